"""The arithmetic of a training step, and the matrix-product peak it is a share of.

`training_flops_per_image` counts the floating-point operations of one training step of a
twin with PyTorch's own counter (`torch.utils.flop_counter.FlopCounterMode`: matrix products
and convolutions, forward and backward, a multiply-add counting two; element-wise work and
the optimiser are not counted). The twins compute the same networks as genmodels, so the count
is the work of both sides' step. It counts a masked convolution as the dense convolution
PyTorch runs (masked taps included); genmodels computes only the kept taps, so its useful
share of the peak is somewhat lower than the figure based on this count.

`torch_matmul_peak` times PyTorch's own `f32` matrix product on square matrices, the peak
for PyTorch's side; genmodels' side is `genmodels bench --gemm-peak` (its matrix library,
gemm).
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import models


def training_flops_per_image(name, batch=32):
    """FLOPs of one training step of twin `name` on `batch` bundled digits, per image."""
    torch.manual_seed(0)
    model = models.MODELS[name]()
    images = models.bundled_digits(batch, models.BINARY_DATA[name])
    optimizers = model.optimizers()
    model.train_step(images, optimizers)  # lazy state (Adam's moments) outside the count
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step(images, optimizers)
    return counter.get_total_flops() / batch


def torch_matmul_peak(sizes=(256, 512, 1024, 2048), seconds_per_size=1.0):
    """PyTorch's best f32 `torch.mm` rate over square sizes, FLOP/s, and the size."""
    best = (0.0, 0)
    for n in sizes:
        a = torch.rand(n, n) + 0.5
        b = torch.rand(n, n) + 0.5
        torch.mm(a, b)
        products, start = 0, time.perf_counter()
        while products == 0 or time.perf_counter() - start < seconds_per_size:
            torch.mm(a, b)
            products += 1
        rate = 2.0 * n**3 * products / (time.perf_counter() - start)
        if rate > best[0]:
            best = (rate, n)
    return best
