"""The PyTorch half of the side-by-side reference: times one (model, op) in a fresh process
and prints the same JSON as `genmodels bench --json`, so that the runner treats both sides
alike (each measurement in its own process, peak memory measured the same way).

    python benches/reference/torch_bench.py --model pixelcnn --op train_step --batch 32 --json
    python benches/reference/torch_bench.py --device cuda --model dcgan --op train_step --batch 256

On a GPU (`--device cuda`) the model, the data and every tensor made on the way live there,
the timer waits for the GPU (`torch.cuda.synchronize`) before it starts and stops, and peak
memory is the CUDA allocator's (`torch.cuda.max_memory_allocated`) above what the data took.

Ops: train_step (every model), log_likelihood (the autoregressive ones), sample_naive (pixelcnn:
one forward pass per pixel; ddpm: the T = 1000 ancestral steps), sample_cached (ddpm: DDIM with 50
steps, eta = 0, as genmodels' default sampler for the DDPM).
"""

import argparse
import ctypes
import json
import sys
import time

import torch

import models

# The defaults of `genmodels bench`: one untimed warm-up run, then this many timed runs.
DEFAULT_WARM_UP = 1
DEFAULT_STEPS = {"train_step": 5, "log_likelihood": 5, "sample_naive": 1, "sample_cached": 3}
OPS = {
    "pixelcnn": ("train_step", "log_likelihood", "sample_naive"),
    "gated-pixelcnn": ("train_step", "log_likelihood"),
    "row-lstm": ("train_step", "log_likelihood"),
    "diagonal-bilstm": ("train_step", "log_likelihood"),
    "vae": ("train_step",),
    "dcgan": ("train_step",),
    "ddpm": ("train_step", "sample_cached", "sample_naive"),
}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]


try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.mallinfo2.restype = _Mallinfo2
except (OSError, AttributeError):
    _LIBC = None


def live_heap_bytes():
    """Bytes glibc's malloc has handed out and not had back (all arenas, mmapped blocks
    included): where PyTorch's CPU tensors live. None off glibc."""
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return info.uordblks + info.hblkhd


class PeakMemory:
    """Peak live heap memory from construction on, above the live heap then.

    genmodels counts its peak exactly (its allocator counts every byte; see genmodels-core's
    `bench::PeakMemory`), from after loading its data and before building its model. Here the
    live heap is sampled: when each `backward` starts (the forward pass is done and autograd
    holds every saved activation, which is where a training step peaks) and after each run.
    A sampled peak can only be lower than the true one, so the comparison does not favour
    genmodels. Resident memory (VmHWM) would not do for either side: allocators keep freed
    memory resident, and PyTorch's first step maps libraries and thread pools."""

    def __init__(self):
        self.start = live_heap_bytes()
        self.peak = self.start

    def sample(self):
        live = live_heap_bytes()
        if live is not None and self.peak is not None:
            self.peak = max(self.peak, live)

    def peak_above_start(self):
        if self.start is None:
            return None
        return max(self.peak - self.start, 0)


_ACTIVE = []
_original_backward = torch.Tensor.backward


def _backward_sampling_memory(self, *args, **kwargs):
    for memory in _ACTIVE:
        memory.sample()
    return _original_backward(self, *args, **kwargs)


torch.Tensor.backward = _backward_sampling_memory


class CudaPeakMemory:
    """`PeakMemory` for a CUDA device: the allocator's peak above what was allocated at the
    start (the data)."""

    def __init__(self):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.start = torch.cuda.memory_allocated()

    def sample(self):
        pass

    def peak_above_start(self):
        torch.cuda.synchronize()
        return max(torch.cuda.max_memory_allocated() - self.start, 0)


def make_op(model_name, op, batch, device="cpu"):
    """A closure running one step of `op` (reading results back as the Rust side does), and
    the memory baseline taken after loading the data and before building the model."""
    images = None
    if op == "train_step":
        images = models.bundled_digits(batch, models.BINARY_DATA[model_name]).to(device)
    elif op == "log_likelihood":
        images = models.bundled_digits(batch, True).to(device)
    if device != "cpu":
        return make_op_on(model_name, op, batch, images, CudaPeakMemory(), device)
    memory = PeakMemory()
    _ACTIVE.append(memory)
    return make_op_on(model_name, op, batch, images, memory, device)


def make_op_on(model_name, op, batch, images, memory, device):
    """`make_op` once the data and the memory baseline are in place."""
    torch.manual_seed(0)
    model = models.MODELS[model_name]().to(device)
    if op == "train_step":
        model.train()
        optimizers = model.optimizers()
        return (lambda: model.train_step(images, optimizers)), memory
    if op == "log_likelihood":
        model.eval()

        def log_likelihood():
            with torch.no_grad():
                return model.log_prob(images).tolist()

        return log_likelihood, memory
    if op == "sample_naive" and model_name == "ddpm":
        model.eval()
        generator = torch.Generator(device=device).manual_seed(0)
        return (lambda: model.sample_ancestral(batch, generator).tolist()), memory
    if op == "sample_cached" and model_name == "ddpm":
        model.eval()
        generator = torch.Generator(device=device).manual_seed(0)
        return (lambda: model.sample_ddim(batch, 50, generator).tolist()), memory
    if op == "sample_naive":
        model.eval()
        generator = torch.Generator(device=device).manual_seed(0)
        return (lambda: model.sample_naive(batch, generator)), memory
    raise ValueError(f"unknown op {op}")


def measure(model_name, op, batch, warm_up, steps, device="cpu"):
    """`warm_up` untimed runs, then `steps` timed ones; peak memory counts from before the
    model was built (see `PeakMemory`)."""
    if op not in OPS[model_name]:
        raise SystemExit(f"the PyTorch reference has no {op} for {model_name}")
    step, memory = make_op(model_name, op, batch, device)
    for _ in range(warm_up):
        step()
        memory.sample()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - started
    memory.sample()
    peak_memory = memory.peak_above_start()
    return {
        "model": model_name,
        "backend": f"pytorch-{device}",
        "op": op,
        "batch": batch,
        "image_size": 28,
        "repetitions": steps,
        "images_per_second": steps * batch / seconds,
        "seconds": seconds,
        "peak_memory_bytes": peak_memory,
        "threads": torch.get_num_threads(),
    }


def synchronize(device):
    """Waits for the GPU's queued work (a no-op on the CPU)."""
    if device != "cpu":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(OPS))
    parser.add_argument("--op", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, help="timed runs (default: as genmodels bench, "
                        "5 for train_step and log_likelihood, 3 for sample_cached, 1 for sample_naive)")
    parser.add_argument("--warm-up", type=int, default=DEFAULT_WARM_UP, help="untimed runs first (default 1)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's, all cores)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", action="store_true", help="print a JSON array")
    args = parser.parse_args()
    if args.device != "cpu":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: PyTorch sees no CUDA device")
        # Tensors the models make on the way (noise, masks, timesteps) are made there too.
        torch.set_default_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or DEFAULT_STEPS.get(args.op, 1)
    result = measure(args.model, args.op, args.batch, args.warm_up, steps, args.device)
    if args.json:
        json.dump([result], sys.stdout)
        print()
    else:
        print(f"{args.model} {args.op} batch {args.batch}: {result['images_per_second']:.1f} images/s")


if __name__ == "__main__":
    main()
