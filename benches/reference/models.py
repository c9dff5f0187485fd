"""PyTorch twins of genmodels' autoregressive models (PixelCNN `small`, the Gated PixelCNN, the
PixelRNN Row LSTM and Diagonal BiLSTM), default VAE, default DCGAN and DDPM `small`.

Each class has the parameter shapes and the order of operations of its Rust original (the
file is named in its docstring), a training step that does what `genmodels_core::Trainer`
does per batch, and a `load_burn` method that loads the weights `reference_export` wrote with
burn's safetensors store, mapping every name explicitly and transposing where burn's layout
differs (a burn `Linear` weight is `[in, out]`, PyTorch's `[out, in]`; convolution and
transposed-convolution kernels have the same layout in both).
"""

import copy
import gzip
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MNIST_TRAIN = os.path.join(
    REPO, "crates", "genmodels-data", "data", "mnist-10k", "train-images-idx3-ubyte.gz"
)


def bundled_digits(n, binarise):
    """The first `n` bundled training digits as a float32 tensor [n, 1, 28, 28], scaled to
    v/255 and, with `binarise`, thresholded `v/255 > 0.5` (genmodels-data's
    `Binarization::Threshold(0.5)`)."""
    with gzip.open(MNIST_TRAIN, "rb") as f:
        raw = f.read()
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if n > count:
        raise ValueError(f"asked for {n} digits, the bundled set has {count}")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16, count=n * rows * cols)
    images = pixels.astype(np.float32).reshape(n, 1, rows, cols) / np.float32(255.0)
    if binarise:
        images = (images > np.float32(0.5)).astype(np.float32)
    return torch.from_numpy(images.copy())


def bernoulli_log_prob(logits, targets):
    """log p(x) = sum_d x_d l_d - softplus(l_d) per row of [N, D] tensors (genmodels-core
    `distributions::bernoulli_log_prob`), computed stably by PyTorch's BCE-with-logits."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return -bce.sum(dim=1)


def _take(weights, name, shape, transpose=False):
    """Tensor `name` of burn's export, checked against the PyTorch parameter `shape`."""
    if name not in weights:
        raise KeyError(f"{name} is not in the exported weights")
    value = weights[name]
    if transpose:
        value = value.T
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name}: exported shape {value.shape}, PyTorch expects {tuple(shape)}")
    return torch.from_numpy(np.ascontiguousarray(value))


class _BurnLoader:
    """Copies burn tensors into PyTorch parameters and records which names were used, so that
    a tensor left over in the file (an unmapped parameter) is an error, not a silent skip."""

    def __init__(self, path):
        self.weights = load_file(path)
        self.used = set()

    def linear(self, layer, prefix):
        # burn: weight [in, out], bias [out]; PyTorch: weight [out, in].
        layer.weight.data.copy_(_take(self.weights, prefix + ".weight", layer.weight.shape, True))
        self.used.add(prefix + ".weight")
        self._bias(layer, prefix)

    def conv(self, layer, prefix):
        # Conv2d [out, in, kh, kw] and ConvTranspose2d [in, out, kh, kw] in both.
        layer.weight.data.copy_(_take(self.weights, prefix + ".weight", layer.weight.shape))
        self.used.add(prefix + ".weight")
        self._bias(layer, prefix)

    def diagonal_state_to_state(self, convs, name):
        # burn: one [2, 2h, 4h] tensor, a [2h, 4h] matrix per direction (left to right, then
        # right to left) whose rows 0..h multiply the state above and rows h..2h the state to
        # the left; PyTorch: a Conv1d(h, 4h, 2) per direction, tap 0 above, tap 1 left.
        out_channels, h, taps = convs[0].weight.shape
        value = _take(self.weights, name, (len(convs), taps * h, out_channels))
        for direction, conv in enumerate(convs):
            conv.weight.data.copy_(value[direction].reshape(taps, h, out_channels).permute(2, 1, 0))
        self.used.add(name)

    def batch_norm(self, layer, prefix):
        for burn_name, tensor in [
            ("gamma", layer.weight),
            ("beta", layer.bias),
            ("running_mean", layer.running_mean),
            ("running_var", layer.running_var),
        ]:
            tensor.data.copy_(_take(self.weights, f"{prefix}.{burn_name}", tensor.shape))
            self.used.add(f"{prefix}.{burn_name}")

    def group_norm(self, layer, prefix):
        # burn: gamma, beta; PyTorch: weight, bias.
        for burn_name, tensor in [("gamma", layer.weight), ("beta", layer.bias)]:
            tensor.data.copy_(_take(self.weights, f"{prefix}.{burn_name}", tensor.shape))
            self.used.add(f"{prefix}.{burn_name}")

    def _bias(self, layer, prefix):
        if layer.bias is None:
            if prefix + ".bias" in self.weights:
                raise ValueError(f"{prefix}.bias exported, but the PyTorch layer has none")
            return
        layer.bias.data.copy_(_take(self.weights, prefix + ".bias", layer.bias.shape))
        self.used.add(prefix + ".bias")

    def finish(self):
        """Fails when the file holds tensors no PyTorch parameter took."""
        left = sorted(set(self.weights) - self.used)
        if left:
            raise ValueError(f"exported tensors not mapped to PyTorch: {left}")


# ---------------------------------------------------------------------------------------------
# PixelCNN small: crates/genmodels-autoregressive/src/{pixelcnn,masked_conv,pixel,raster}.rs


def pixelcnn_mask(c_in, c_out, k, mask_type, colour_groups=1):
    """The 0/1 mask [out, in, k, k] of `MaskedConv2dConfig::mask_values`: keep (dy, dx) when
    dy < 0, or dy = 0 and dx < 0, or at the centre when g_in < g_out (A) / g_in <= g_out (B)."""
    mask = torch.zeros(c_out, c_in, k, k)
    centre = k // 2
    mask[:, :, :centre, :] = 1.0
    mask[:, :, centre, :centre] = 1.0
    g_out = torch.arange(c_out) // (c_out // colour_groups)
    g_in = torch.arange(c_in) // (c_in // colour_groups)
    if mask_type == "A":
        centre_kept = g_in[None, :] < g_out[:, None]
    else:
        centre_kept = g_in[None, :] <= g_out[:, None]
    mask[:, :, centre, centre] = centre_kept.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution with "same" padding whose weight is multiplied by the causal mask
    on every forward (genmodels computes the same function over the kept taps only)."""

    def __init__(self, c_in, c_out, k, mask_type):
        super().__init__(c_in, c_out, k, padding=k // 2)
        self.register_buffer("mask", pixelcnn_mask(c_in, c_out, k, mask_type))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """x + 1x1(ReLU(3x3 mask-B(ReLU(1x1(ReLU(x))))))."""

    def __init__(self, h):
        super().__init__()
        self.reduce = MaskedConv2d(2 * h, h, 1, "B")
        self.conv = MaskedConv2d(h, h, 3, "B")
        self.expand = MaskedConv2d(h, 2 * h, 1, "B")

    def forward(self, x):
        y = self.reduce(F.relu(x))
        y = self.conv(F.relu(y))
        return x + self.expand(F.relu(y))


class _OnePlayer:
    """The training step of a model trained as one player (`Trainer::run`): loss, read back
    with its components, backward, Adam with lr 1e-3, beta = (0.9, 0.999), eps = 1e-8."""

    def optimizers(self):
        return [torch.optim.Adam(self.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)]

    def train_step(self, images, optimizers):
        """What the trainer does per batch: loss, read back, backward, Adam step."""
        (optimizer,) = optimizers
        loss, components = self.loss(images)
        value = loss.item()
        for c in components.values():
            c.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value


class _Raster(_OnePlayer):
    """What the autoregressive twins share (`raster.rs`): `forward` gives one Bernoulli logit
    per pixel, `log p(x)` sums the 784 conditionals, the loss is its negated batch mean, and
    the head is ReLU -> 1x1 -> ReLU -> 1x1 (mask B; `head_hidden`, `head_out`). Each twin's
    `config` holds its settings under the Rust config's field names (the runner compares them
    with the exported config); all of them model binarised MNIST, 1 x 28 x 28, Bernoulli pixels."""

    def head(self, x):
        return self.head_out(F.relu(self.head_hidden(F.relu(x))))

    def log_prob(self, images):
        """log p(x) per image in nats, [N]."""
        n = images.shape[0]
        return bernoulli_log_prob(self(images).reshape(n, -1), images.reshape(n, -1))

    def loss(self, images):
        """-log p(x) averaged over the batch (`raster::loss`); no components."""
        return -self.log_prob(images).mean(), {}

    @torch.no_grad()
    def sample_naive(self, n, generator=None):
        """n images drawn pixel by pixel in raster order, one full forward pass per pixel."""
        images = torch.zeros(n, 1, 28, 28)
        for y in range(28):
            for x in range(28):
                p = torch.sigmoid(self(images)[:, 0, y, x])
                images[:, 0, y, x] = torch.bernoulli(p, generator=generator)
        return images


class PixelCnn(_Raster, nn.Module):
    """`PixelCnnConfig::small()`: 7x7 mask-A conv 1 -> 2h = 64, 5 residual blocks, head
    ReLU -> 1x1 2h -> 2h -> ReLU -> 1x1 2h -> 1 Bernoulli logit per pixel."""

    def __init__(self, hidden=32, residual_blocks=5, input_kernel=7):
        super().__init__()
        self.config = {"hidden": hidden, "residual_blocks": residual_blocks, "input_kernel": input_kernel}
        h = hidden
        self.input = MaskedConv2d(1, 2 * h, input_kernel, "A")
        self.blocks = nn.ModuleList(ResidualBlock(h) for _ in range(residual_blocks))
        self.head_hidden = MaskedConv2d(2 * h, 2 * h, 1, "B")
        self.head_out = MaskedConv2d(2 * h, 1, 1, "B")

    def forward(self, images):
        x = self.input(images)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def load_burn(self, path):
        loader = _BurnLoader(path)
        convs = [("input", self.input)]
        for i, block in enumerate(self.blocks):
            convs += [(f"blocks.{i}.{name}", getattr(block, name)) for name in ("reduce", "conv", "expand")]
        convs += [("head_hidden", self.head_hidden), ("head_out", self.head_out)]
        # burn saves the weights and biases; the masks are constants rebuilt from the config,
        # and are not saved.
        for prefix, layer in convs:
            loader.conv(layer, prefix + ".conv")
        loader.finish()
        return self


# ---------------------------------------------------------------------------------------------
# Gated PixelCNN: crates/genmodels-autoregressive/src/{gated_pixelcnn,gates,masked_conv}.rs,
# `GatedPixelCnnConfig::new()` (the `small` preset, unconditional), one colour.


def gated(x):
    """tanh(a) * sigmoid(b) of the two gates [a, b] along the channels (`gates::gated_activation`
    with one colour group: gate a is the first half of the channels, gate b the second)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def lstm_update(gates, cell):
    """One LSTM step from the pre-activations of the output, forget, input and content gates, in
    that order along the channels (`gates::lstm_update` with one colour group)."""
    o, f, i, g = gates.chunk(4, dim=1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


class GatedLayer(nn.Module):
    """One layer of both stacks, p maps each (`GatedLayer::forward_preactivated`):

        v' = V(v)                                V: (k/2+1) x k over rows y - k/2 ..= y
        h' = H(h) + L(v' shifted down one row)   H: 1 x (k/2+1) over columns x - k/2 ..= x,
                                                    centre masked (A in layer 0, then B)
        v_out = gated(v'),  h_out = [h +] O(gated(h'))   L, O: 1x1 (O mask B); no h + in layer 0
    """

    def __init__(self, c_in, p, k, mask_type, residual):
        super().__init__()
        self.reach = k // 2
        self.residual = residual
        self.vertical = nn.Conv2d(c_in, 2 * p, (self.reach + 1, k))
        self.horizontal = nn.Conv2d(c_in, 2 * p, (1, self.reach + 1))
        mask = torch.ones(2 * p, c_in, 1, self.reach + 1)
        mask[:, :, 0, self.reach] = pixelcnn_mask(c_in, 2 * p, 1, mask_type)[:, :, 0, 0]
        self.register_buffer("mask", mask)
        self.link = nn.Conv2d(2 * p, 2 * p, 1)
        self.output = MaskedConv2d(p, p, 1, "B")

    def forward(self, v, h):
        """Returns the vertical pre-activations v' and the horizontal output."""
        r = self.reach
        v_pre = self.vertical(F.pad(v, (r, r, r, 0)))
        h_pre = F.conv2d(F.pad(h, (r, 0, 0, 0)), self.horizontal.weight * self.mask, self.horizontal.bias)
        # Row y of the horizontal stack gets v' of row y - 1; row 0 gets L(0), the bias.
        v_above = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
        h_pre = h_pre + self.link(v_above)
        out = self.output(gated(h_pre))
        return v_pre, (h + out if self.residual else out)


class GatedPixelCnn(_Raster, nn.Module):
    """`GatedPixelCnnConfig::new()`: p = 24 maps per stack, 6 gated layers (the first from the
    image, 7-wide, mask A; then 3-wide, mask B), the head ReLU -> 1x1 p -> p -> ReLU -> 1x1
    p -> 1 on the horizontal stack."""

    def __init__(self, hidden=24, layers=6, kernel_size=3, input_kernel=7):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers, "kernel_size": kernel_size,
                       "input_kernel": input_kernel, "classes": None}
        p = hidden
        self.layers = nn.ModuleList(
            GatedLayer(1, p, input_kernel, "A", residual=False) if i == 0
            else GatedLayer(p, p, kernel_size, "B", residual=True)
            for i in range(layers)
        )
        self.head_hidden = MaskedConv2d(p, p, 1, "B")
        self.head_out = MaskedConv2d(p, 1, 1, "B")

    def forward(self, images):
        v, h = images, images
        for i, layer in enumerate(self.layers):
            v_pre, h = layer(v, h)
            if i + 1 < len(self.layers):  # the last layer's vertical output is not used
                v = gated(v_pre)
        return self.head(h)

    def load_burn(self, path):
        loader = _BurnLoader(path)
        for i, layer in enumerate(self.layers):
            loader.conv(layer.vertical, f"layers.{i}.vertical.conv")
            loader.conv(layer.horizontal, f"layers.{i}.horizontal.conv")
            loader.conv(layer.link, f"layers.{i}.link")
            loader.conv(layer.output, f"layers.{i}.output.conv")
        loader.conv(self.head_hidden, "head_hidden.conv")
        loader.conv(self.head_out, "head_out.conv")
        loader.finish()
        return self


# ---------------------------------------------------------------------------------------------
# PixelRNN Row LSTM: crates/genmodels-autoregressive/src/{row_lstm,gates}.rs,
# `RowLstmConfig::new()` (h = 16, 5 layers, k = 3, 7x7 input), one colour.


class RowLstmLayer(nn.Module):
    """The LSTM run down the rows, every pixel of a row at once, and the residual:

        [o, f, i, g] = K^is * x_y + K^ss * h_{y-1}     (h, c zero above row 0)
        out = x + 1x1(h)

    K^is: masked 1 x k row conv 2h -> 4h over columns x - k/2 ..= x (only the k/2 + 1 kept
    columns are weights; mask B at the centre), computed for the whole map before the loop.
    K^ss: unmasked 1 x k row conv h -> 4h over the row above, no bias."""

    def __init__(self, h, k):
        super().__init__()
        self.h = h
        self.half = k // 2
        self.input_to_state = nn.Conv2d(2 * h, 4 * h, (1, self.half + 1))
        square = pixelcnn_mask(2 * h, 4 * h, k, "B")
        self.register_buffer("mask", square[:, :, self.half : self.half + 1, : self.half + 1].clone())
        self.state_to_state = nn.Conv2d(h, 4 * h, (1, k), padding=(0, self.half), bias=False)
        self.residual = MaskedConv2d(h, 2 * h, 1, "B")

    def forward(self, x):
        n, _, height, width = x.shape
        weight = self.input_to_state.weight * self.mask
        from_input = F.conv2d(F.pad(x, (self.half, 0, 0, 0)), weight, self.input_to_state.bias)
        hidden = x.new_zeros(n, self.h, 1, width)
        cell = x.new_zeros(n, self.h, 1, width)
        rows = []
        for y in range(height):
            gates = from_input[:, :, y : y + 1] + self.state_to_state(hidden)
            hidden, cell = lstm_update(gates, cell)
            rows.append(hidden)
        return x + self.residual(torch.cat(rows, dim=2))


class RowLstm(_Raster, nn.Module):
    """`RowLstmConfig::new()`: 7x7 mask-A conv 1 -> 2h = 32, 5 Row LSTM layers (h = 16, k = 3)
    with residual connections, head ReLU -> 1x1 2h -> 2h -> ReLU -> 1x1 2h -> 1."""

    def __init__(self, hidden=16, layers=5, kernel_size=3, input_kernel=7):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers, "kernel_size": kernel_size, "input_kernel": input_kernel}
        h = hidden
        self.input = MaskedConv2d(1, 2 * h, input_kernel, "A")
        self.layers = nn.ModuleList(RowLstmLayer(h, kernel_size) for _ in range(layers))
        self.head_hidden = MaskedConv2d(2 * h, 2 * h, 1, "B")
        self.head_out = MaskedConv2d(2 * h, 1, 1, "B")

    def forward(self, images):
        x = self.input(images)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def load_burn(self, path):
        loader = _BurnLoader(path)
        loader.conv(self.input, "input.conv")
        for i, layer in enumerate(self.layers):
            loader.conv(layer.input_to_state, f"layers.{i}.input_to_state.conv")
            loader.conv(layer.state_to_state, f"layers.{i}.state_to_state")
            loader.conv(layer.residual, f"layers.{i}.residual.conv")
        loader.conv(self.head_hidden, "head_hidden.conv")
        loader.conv(self.head_out, "head_out.conv")
        loader.finish()
        return self


# ---------------------------------------------------------------------------------------------
# PixelRNN Diagonal BiLSTM: crates/genmodels-autoregressive/src/{diagonal_bilstm,gates}.rs,
# `DiagonalBiLstmConfig::new()` (h = 16, 2 layers, 7x7 input), one colour.


def skew(x):
    """[N, C, H, W] -> [N, C, H, W + H - 1], row i shifted right by i (zeros elsewhere): the
    diagonals i + j = const become columns."""
    n, c, h, w = x.shape
    return F.pad(x, (0, h)).reshape(n, c, h * (w + h))[:, :, : h * (w + h - 1)].reshape(n, c, h, w + h - 1)


def unskew(x):
    """Undoes `skew`: [N, C, H, S] -> [N, C, H, S - H + 1], output (i, j) = input (i, i + j)."""
    n, c, h, s = x.shape
    return F.pad(x.reshape(n, c, h * s), (0, h)).reshape(n, c, h, s + 1)[:, :, :, : s - h + 1]


def diagonal_lstm(pre, state_to_state):
    """The column-wise LSTM over a skewed map: column j from column j - 1, whose state at skewed
    rows r - 1 and r are the original pixel's neighbours above and to the left. The
    state-to-state is the paper's 2 x 1 convolution along the column (`state_to_state`,
    [4h, h, 2]: tap 0 reads the row above, tap 1 the row itself). Pre-activations are zero off
    the image (the skew's padding), so the state there stays zero where the image reads it.

    pre: [N, 4h, H, S] skewed input-to-state; returns the hidden states [N, h, H, S]."""
    n, _, height, width = pre.shape
    h = state_to_state.shape[1]
    hidden = pre.new_zeros(n, h, height)
    cell = pre.new_zeros(n, h, height)
    states = []
    for j in range(width):
        gates = pre[:, :, :, j] + F.conv1d(F.pad(hidden, (1, 0)), state_to_state)
        hidden, cell = lstm_update(gates, cell)
        states.append(hidden)
    return torch.stack(states, dim=3)


class DiagonalBiLstmLayer(nn.Module):
    """Two diagonal LSTMs, left to right and right to left (on the mirrored map), each with its
    own 1x1 input-to-state (mask B for left to right, unmasked for right to left, which is only
    read one row down) and 2 x 1 state-to-state (no bias); the right-to-left output is shifted
    down one row before the two are added, then x + 1x1 mask B (h -> 2h)."""

    def __init__(self, h):
        super().__init__()
        self.input_to_state_lr = MaskedConv2d(2 * h, 4 * h, 1, "B")
        self.input_to_state_rl = nn.Conv2d(2 * h, 4 * h, 1)
        self.state_to_state_lr = nn.Conv1d(h, 4 * h, 2, bias=False)
        self.state_to_state_rl = nn.Conv1d(h, 4 * h, 2, bias=False)
        self.residual = MaskedConv2d(h, 2 * h, 1, "B")

    def forward(self, x):
        height = x.shape[2]
        pre_lr = skew(self.input_to_state_lr(x))
        pre_rl = skew(self.input_to_state_rl(x).flip(3))
        lr = unskew(diagonal_lstm(pre_lr, self.state_to_state_lr.weight))
        rl = unskew(diagonal_lstm(pre_rl, self.state_to_state_rl.weight)).flip(3)
        rl = F.pad(rl, (0, 0, 1, 0))[:, :, :height]
        return x + self.residual(lr + rl)


class DiagonalBiLstm(_Raster, nn.Module):
    """`DiagonalBiLstmConfig::new()`: 7x7 mask-A conv 1 -> 2h = 32, 2 Diagonal BiLSTM layers
    (h = 16), head ReLU -> 1x1 2h -> 2h -> ReLU -> 1x1 2h -> 1."""

    def __init__(self, hidden=16, layers=2, input_kernel=7):
        super().__init__()
        self.config = {"hidden": hidden, "layers": layers, "input_kernel": input_kernel}
        h = hidden
        self.input = MaskedConv2d(1, 2 * h, input_kernel, "A")
        self.layers = nn.ModuleList(DiagonalBiLstmLayer(h) for _ in range(layers))
        self.head_hidden = MaskedConv2d(2 * h, 2 * h, 1, "B")
        self.head_out = MaskedConv2d(2 * h, 1, 1, "B")

    def forward(self, images):
        x = self.input(images)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def load_burn(self, path):
        loader = _BurnLoader(path)
        loader.conv(self.input, "input.conv")
        for i, layer in enumerate(self.layers):
            loader.conv(layer.input_to_state_lr, f"layers.{i}.input_to_state_lr.conv")
            loader.conv(layer.input_to_state_rl, f"layers.{i}.input_to_state_rl")
            loader.diagonal_state_to_state(
                [layer.state_to_state_lr, layer.state_to_state_rl], f"layers.{i}.state_to_state"
            )
            loader.conv(layer.residual, f"layers.{i}.residual.conv")
        loader.conv(self.head_hidden, "head_hidden.conv")
        loader.conv(self.head_out, "head_out.conv")
        loader.finish()
        return self


# ---------------------------------------------------------------------------------------------
# VAE default: crates/genmodels-vae/src/lib.rs, crates/genmodels-core/src/nn.rs (Mlp),
# distributions.rs. Burda et al.'s 784-200-200-50, tanh, Bernoulli decoder, beta = 1.


def _mlp(widths):
    layers = []
    for i, (d_in, d_out) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def kl_to_standard_normal(mean, log_var):
    """KL(N(mean, diag e^log_var) || N(0, I)) = 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2), [N]."""
    return ((log_var.exp() + mean.pow(2) - 1.0 - log_var) * 0.5).sum(dim=1)


class Vae(_OnePlayer, nn.Module):
    def __init__(self, hidden=(200, 200), latent_dim=50, dims=784, beta=1.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.beta = beta
        self.encoder = _mlp([dims, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), dims])

    def encode(self, images):
        stats = self.encoder(images.reshape(images.shape[0], -1))
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]

    def terms(self, images, eps):
        """log p(x|z) at z = mean + sigma * eps, and the KL, per image."""
        x = images.reshape(images.shape[0], -1)
        mean, log_var = self.encode(images)
        z = mean + (log_var * 0.5).exp() * eps
        return bernoulli_log_prob(self.decoder(z), x), kl_to_standard_normal(mean, log_var)

    def loss(self, images):
        """-ELBO with one reparameterised draw: mean(-log p(x|z)) + beta mean(KL)."""
        mean, log_var = self.encode(images)
        eps = torch.randn_like(mean)
        z = mean + (log_var * 0.5).exp() * eps
        x = images.reshape(images.shape[0], -1)
        reconstruction = -bernoulli_log_prob(self.decoder(z), x).mean()
        kl = kl_to_standard_normal(mean, log_var).mean()
        return reconstruction + kl * self.beta, {"reconstruction": reconstruction, "kl": kl}

    def load_burn(self, path):
        loader = _BurnLoader(path)
        # burn names an enum module's field with its variant: ImageEncoder::Mlp -> encoder.Mlp.
        for net, burn_net in [(self.encoder, "encoder.Mlp"), (self.decoder, "decoder.Mlp")]:
            linears = [layer for layer in net if isinstance(layer, nn.Linear)]
            for i, layer in enumerate(linears):
                loader.linear(layer, f"{burn_net}.layers.{i}")
        loader.finish()
        return self


# ---------------------------------------------------------------------------------------------
# DCGAN default: crates/genmodels-gan/src/{model,network,objective}.rs, `GanConfig::dcgan`
# (width 64, z in R^100, non-saturating, no spectral norm, batch norm), MNIST.

LEAKY_SLOPE = 0.2


class DcganGenerator(nn.Module):
    """Linear(100 -> 2w*7*7, no bias) -> BN -> ReLU -> convT 4x4/2 (2w -> w, no bias) -> BN
    -> ReLU -> convT 4x4/2 (w -> 1) -> tanh."""

    def __init__(self, latent_dim=100, width=64):
        super().__init__()
        self.width = width
        self.project = nn.Linear(latent_dim, 2 * width * 7 * 7, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.deconv1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.deconv2 = nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.project(z).reshape(z.shape[0], 2 * self.width, 7, 7)
        x = F.relu(self.bn0(x))
        x = F.relu(self.bn1(self.deconv1(x)))
        return torch.tanh(self.deconv2(x))


class DcganDiscriminator(nn.Module):
    """conv 4x4/2 (1 -> w) -> LeakyReLU -> conv 4x4/2 (w -> 2w, no bias) -> BN -> LeakyReLU
    -> flatten -> Linear(2w*7*7 -> 1); one raw output (logit) per image."""

    def __init__(self, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.head = nn.Linear(2 * width * 7 * 7, 1)

    def forward(self, images):
        x = F.leaky_relu(self.conv1(images), LEAKY_SLOPE)
        x = F.leaky_relu(self.bn2(self.conv2(x)), LEAKY_SLOPE)
        return self.head(x.reshape(x.shape[0], -1)).squeeze(1)


def mean_pairwise_distance(x):
    """Mean Euclidean distance between the rows of x [N, D], off the diagonal (as
    genmodels-gan's `mean_pairwise_distance`)."""
    n = x.shape[0]
    squared_norms = x.pow(2).sum(dim=1, keepdim=True)
    squared = (squared_norms + squared_norms.T - 2.0 * x @ x.T).clamp_min(0.0)
    return squared.sqrt().sum() / (n * (n - 1))


class Dcgan(nn.Module):
    latent_dim = 100

    def __init__(self):
        super().__init__()
        self.generator = DcganGenerator(self.latent_dim)
        self.discriminator = DcganDiscriminator()

    @staticmethod
    def scaled(images):
        """Data in the players' range, x -> 2x - 1."""
        return images * 2.0 - 1.0

    @staticmethod
    def discriminator_loss(d_real, d_fake):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    @staticmethod
    def generator_loss(d_fake):
        return F.softplus(-d_fake).mean()

    def load_burn(self, path):
        loader = _BurnLoader(path)
        g, d = "generator.net.Dcgan", "discriminator.net.Dcgan"
        loader.linear(self.generator.project, f"{g}.project")
        loader.batch_norm(self.generator.bn0, f"{g}.bn0")
        loader.conv(self.generator.deconv1, f"{g}.deconv1")
        loader.batch_norm(self.generator.bn1, f"{g}.bn1")
        loader.conv(self.generator.deconv2, f"{g}.deconv2")
        loader.conv(self.discriminator.conv1, f"{d}.conv1.conv")
        loader.conv(self.discriminator.conv2, f"{d}.conv2.conv")
        loader.batch_norm(self.discriminator.bn2, f"{d}.bn2")
        loader.linear(self.discriminator.head, "discriminator.head.linear")
        loader.finish()
        return self

    def optimizers(self):
        """The two players' Adams, discriminator first (`Gan::players`): lr 2e-4, beta1 0.5."""
        return [
            torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8),
            torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8),
        ]

    def train_step(self, images, optimizers):
        """The discriminator's step, then the generator's, each on fresh z, reading back the
        loss and the components the Rust players report (`Gan::player_loss`)."""
        opt_d, opt_g = optimizers
        x = self.scaled(images)
        n = images.shape[0]

        fake = self.generator(torch.randn(n, self.latent_dim)).detach()
        d_real = self.discriminator(x)
        d_fake = self.discriminator(fake)
        d_loss = self.discriminator_loss(d_real, d_fake)
        value = d_loss.item()
        torch.sigmoid(d_real.detach()).mean().item()
        torch.sigmoid(d_fake.detach()).mean().item()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        fake = self.generator(torch.randn(n, self.latent_dim))
        g_loss = self.generator_loss(self.discriminator(fake))
        g_loss.item()
        spread = mean_pairwise_distance(fake.detach().reshape(n, -1))
        (spread / mean_pairwise_distance(x.reshape(n, -1)).clamp_min(1e-12)).item()
        # backward also fills the discriminator's gradients, as burn's does; its optimiser
        # clears them before its next step.
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return value


# ---------------------------------------------------------------------------------------------
# DDPM `small`: crates/genmodels-diffusion/src/{unet,schedule,process,lib}.rs,
# `DiffusionConfig::small(ImageShape::MNIST, DataGrid::Binary)` (the registry's `ddpm` for
# binary pixels): a U-Net of 16 base channels, multipliers [1, 2, 2], one residual block per
# level, attention at 7x7, 8 groups, no dropout; T = 1000, linear beta 1e-4..0.02; EMA 0.999.

GROUP_NORM_EPS = 1e-5  # burn's GroupNormConfig default, as PyTorch's


def sinusoidal_embedding(timesteps, dim):
    """[sin(t w_0), ..., sin(t w_{k-1}), cos(t w_0), ...], w_i = 10000^(-i/k), k = dim/2
    (`unet::sinusoidal_embedding`): the frequencies in float64 (Python's libm, as Rust's), then
    float32; t as float32."""
    half = dim // 2
    frequencies = torch.tensor([math.exp(-math.log(10000.0) * i / half) for i in range(half)],
                               dtype=torch.float32)
    angles = timesteps.float().reshape(-1, 1) * frequencies.reshape(1, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DiffusionResidualBlock(nn.Module):
    """h = conv3x3(SiLU(GN(x))) + Linear(e) per channel, out = skip(x) + conv3x3(SiLU(GN(h))),
    skip a 1x1 convolution where the channels change (`unet::ResidualBlock`); `e` is the
    activated time embedding."""

    def __init__(self, c_in, c_out, time_dim, groups):
        super().__init__()
        self.norm_in = nn.GroupNorm(groups, c_in, eps=GROUP_NORM_EPS)
        self.conv_in = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm_out = nn.GroupNorm(groups, c_out, eps=GROUP_NORM_EPS)
        self.conv_out = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x, time):
        h = self.conv_in(F.silu(self.norm_in(x)))
        h = h + self.time(time)[:, :, None, None]
        h = self.conv_out(F.silu(self.norm_out(h)))  # dropout 0 in `small`
        return (x if self.skip is None else self.skip(x)) + h


class SelfAttention(nn.Module):
    """Single head over the H*W positions: out = x + P(V softmax(Q^T K / sqrt(C))^T), with Q,
    K, V from one 1x1 convolution of GN(x) (`unet::SelfAttention`)."""

    def __init__(self, channels, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=GROUP_NORM_EPS)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.projection = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3 * c, h * w).chunk(3, dim=1)
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=2)
        attended = (v @ weights.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.projection(attended)


class DiffusionUNet(nn.Module):
    """The noise predictor eps_theta(x_t, t) (`unet::UNet`): sinusoids of t -> Linear -> SiLU ->
    Linear -> SiLU, the embedding every residual block adds; conv_in, then per level
    `blocks_per_level` blocks (each followed by attention at the lowest level) and a stride-2
    3x3 convolution except at the lowest; the middle block, attention, block; then per level
    from the lowest up, `blocks_per_level + 1` blocks, each on [h, skip] concatenated (the
    skips are conv_in's output, every down block's and every downsampled map, taken back in
    reverse order), and, except at full resolution, nearest-neighbour doubling and a 3x3
    convolution; GN -> SiLU -> conv3x3 (zero at initialisation) to the image's channels."""

    def __init__(self, channels=1, base_channels=16, channel_multipliers=(1, 2, 2),
                 blocks_per_level=1, attention=True, groups=8):
        super().__init__()
        self.config = {"base_channels": base_channels, "channel_multipliers": list(channel_multipliers),
                       "blocks_per_level": blocks_per_level, "attention": attention,
                       "groups": groups, "dropout": 0.0}
        base = base_channels
        self.sinusoid_dim = 2 * ((base + 1) // 2)
        time_dim = 4 * base
        levels = len(channel_multipliers)
        self.time_in = nn.Linear(self.sinusoid_dim, time_dim)
        self.time_out = nn.Linear(time_dim, time_dim)
        self.conv_in = nn.Conv2d(channels, base, 3, padding=1)
        skips = [base]
        c = base
        self.down = nn.ModuleList()
        for level, multiplier in enumerate(channel_multipliers):
            lowest = level + 1 == levels
            stage = nn.Module()
            stage.blocks = nn.ModuleList()
            stage.attentions = nn.ModuleList()
            for _ in range(blocks_per_level):
                stage.blocks.append(DiffusionResidualBlock(c, base * multiplier, time_dim, groups))
                c = base * multiplier
                if lowest and attention:
                    stage.attentions.append(SelfAttention(c, groups))
                skips.append(c)
            stage.downsample = None if lowest else nn.Conv2d(c, c, 3, stride=2, padding=1)
            if not lowest:
                skips.append(c)
            self.down.append(stage)
        self.middle_first = DiffusionResidualBlock(c, c, time_dim, groups)
        self.middle_attention = SelfAttention(c, groups) if attention else None
        self.middle_second = DiffusionResidualBlock(c, c, time_dim, groups)
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            lowest = level + 1 == levels
            stage = nn.Module()
            stage.blocks = nn.ModuleList()
            stage.attentions = nn.ModuleList()
            for _ in range(blocks_per_level + 1):
                stage.blocks.append(DiffusionResidualBlock(c + skips.pop(), base * channel_multipliers[level],
                                                           time_dim, groups))
                c = base * channel_multipliers[level]
                if lowest and attention:
                    stage.attentions.append(SelfAttention(c, groups))
            stage.upsample = nn.Conv2d(c, c, 3, padding=1) if level > 0 else None
            self.up.append(stage)
        assert not skips
        self.norm_out = nn.GroupNorm(groups, c, eps=GROUP_NORM_EPS)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, timesteps):
        """eps_theta for noisy images x [N, C, H, W] at steps `timesteps` [N] (ints or floats)."""
        time = F.silu(self.time_out(F.silu(self.time_in(sinusoidal_embedding(timesteps, self.sinusoid_dim)))))
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            for i, block in enumerate(stage.blocks):
                h = block(h, time)
                if i < len(stage.attentions):
                    h = stage.attentions[i](h)
                skips.append(h)
            if stage.downsample is not None:
                h = stage.downsample(h)
                skips.append(h)
        h = self.middle_first(h, time)
        if self.middle_attention is not None:
            h = self.middle_attention(h)
        h = self.middle_second(h, time)
        for stage in self.up:
            for i, block in enumerate(stage.blocks):
                h = block(torch.cat([h, skips.pop()], dim=1), time)
                if i < len(stage.attentions):
                    h = stage.attentions[i](h)
            if stage.upsample is not None:
                h = stage.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

    def load_burn(self, path):
        """Loads a burn `UNet` (`Diffusion::network()` or `average_network()` saved alone)."""
        loader = _BurnLoader(path)
        loader.linear(self.time_in, "time_in")
        loader.linear(self.time_out, "time_out")
        loader.conv(self.conv_in, "conv_in")

        def block(b, prefix):
            loader.group_norm(b.norm_in, prefix + ".norm_in")
            loader.conv(b.conv_in, prefix + ".conv_in")
            loader.linear(b.time, prefix + ".time")
            loader.group_norm(b.norm_out, prefix + ".norm_out")
            loader.conv(b.conv_out, prefix + ".conv_out")
            if b.skip is not None:
                loader.conv(b.skip, prefix + ".skip")

        def attention(a, prefix):
            loader.group_norm(a.norm, prefix + ".norm")
            loader.conv(a.qkv, prefix + ".qkv")
            loader.conv(a.projection, prefix + ".projection")

        for name, stages in [("down", self.down), ("up", self.up)]:
            for level, stage in enumerate(stages):
                for i, b in enumerate(stage.blocks):
                    block(b, f"{name}.{level}.blocks.{i}")
                for i, a in enumerate(stage.attentions):
                    attention(a, f"{name}.{level}.attentions.{i}")
                resample = stage.downsample if name == "down" else stage.upsample
                if resample is not None:
                    loader.conv(resample, f"{name}.{level}.{name}sample")
        block(self.middle_first, "middle.first")
        if self.middle_attention is not None:
            attention(self.middle_attention, "middle.attention")
        block(self.middle_second, "middle.second")
        loader.group_norm(self.norm_out, "norm_out")
        loader.conv(self.conv_out, "conv_out")
        loader.finish()
        return self


class LinearSchedule:
    """Ho et al.'s linear schedule (`schedule::Schedule`): beta_t = beta_1 + (beta_T - beta_1)
    (t - 1)/(T - 1), alpha_bar_t = prod_{s<=t} (1 - beta_s), all in float64 (index t, with
    alpha_bar_0 = 1); the per-step coefficients become float32 only as tensors, as genmodels'
    `per_image` and its L_simple table do."""

    def __init__(self, timesteps=1000, beta_start=1e-4, beta_end=0.02):
        self.timesteps = timesteps
        self.betas = [0.0] + [beta_start + (beta_end - beta_start) * i / (timesteps - 1)
                              for i in range(timesteps)]
        self.alpha_bars = [1.0]
        for beta in self.betas[1:]:
            self.alpha_bars.append(self.alpha_bars[-1] * (1.0 - beta))
        alpha_bars = torch.tensor(self.alpha_bars, dtype=torch.float64)
        # Tables over t = 0..T: sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), float64 -> float32.
        self.sqrt_alpha_bar = alpha_bars.sqrt().float()
        self.sqrt_one_minus_alpha_bar = (1.0 - alpha_bars).sqrt().float()

    def q_sample(self, x0, timesteps, noise):
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t [N] (int64)."""
        signal = self.sqrt_alpha_bar[timesteps].reshape(-1, 1, 1, 1)
        scale = self.sqrt_one_minus_alpha_bar[timesteps].reshape(-1, 1, 1, 1)
        return x0 * signal + noise * scale

    def posterior_variance(self, t):
        return self.betas[t] * (1.0 - self.alpha_bars[t - 1]) / (1.0 - self.alpha_bars[t])


class Ddpm(nn.Module):
    """The DDPM `small` as genmodels trains it (`Diffusion`): the network trained by L_simple,
    its moving average (decay min(0.999, (1 + n)/(10 + n)) after n updates) for sampling, and
    Adam with the registry's learning rate for the DDPM (`Registered::learning_rate`: Ho et
    al.'s 2e-4), beta = (0.9, 0.999), eps = 1e-8."""

    learning_rate = 2e-4
    ema_decay = 0.999

    def __init__(self):
        super().__init__()
        self.network = DiffusionUNet()
        self.average = copy.deepcopy(self.network).requires_grad_(False)
        self.ema_updates = 0
        self.schedule = LinearSchedule()
        # Under the Rust config's field names (`DiffusionConfig`), for the runner to compare.
        self.config = {
            "image_shape": {"channels": 1, "height": 28, "width": 28},
            "data_grid": "Binary",
            "timesteps": self.schedule.timesteps,
            "schedule": {"Linear": {"beta_start": 1e-4, "beta_end": 0.02}},
            "reverse_variance": "PosteriorVariance",
            "unet": self.network.config,
            "ema_decay": self.ema_decay,
            "clip_denoised": True,
        }

    @staticmethod
    def scaled(images):
        """Data in the model's range, x -> 2x - 1."""
        return images * 2.0 - 1.0

    def simple_loss(self, x0, timesteps, noise):
        """L_simple = mean (eps - eps_theta(x_t, t))^2 over pixels and images."""
        predicted = self.network(self.schedule.q_sample(x0, timesteps, noise), timesteps)
        return (predicted - noise).pow(2).mean()

    def loss(self, images):
        """L_simple with t uniform on 1..=T per image and eps ~ N(0, I) (`Trainable::loss`)."""
        x0 = self.scaled(images)
        timesteps = torch.randint(1, self.schedule.timesteps + 1, (x0.shape[0],))
        loss = self.simple_loss(x0, timesteps, torch.randn_like(x0))
        return loss, {"noise_mse": loss}

    def optimizers(self):
        return [torch.optim.Adam(self.network.parameters(), lr=self.learning_rate,
                                 betas=(0.9, 0.999), eps=1e-8)]

    @torch.no_grad()
    def update_average(self):
        """ema <- d ema + (1 - d) theta (`Diffusion::after_player_step`)."""
        decay = min(self.ema_decay, (1.0 + self.ema_updates) / (10.0 + self.ema_updates))
        for average, live in zip(self.average.parameters(), self.network.parameters()):
            average.mul_(decay).add_(live, alpha=1.0 - decay)
        self.ema_updates += 1

    def train_step(self, images, optimizers):
        """What the trainer does per batch: loss, read back with its component, backward, Adam,
        then the moving average."""
        (optimizer,) = optimizers
        loss, components = self.loss(images)
        value = loss.item()
        for c in components.values():
            c.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        self.update_average()
        return value

    def predict_x0(self, x, t, predicted):
        """x0_hat = x_t / sqrt(alpha_bar_t) - sqrt((1 - alpha_bar_t)/alpha_bar_t) eps_hat, clipped
        to [-1, 1] (`clip_denoised`)."""
        a = self.schedule.alpha_bars[t]
        return (x * float(np.float32(1.0 / math.sqrt(a)))
                - predicted * float(np.float32(math.sqrt((1.0 - a) / a)))).clamp(-1.0, 1.0)

    @torch.no_grad()
    def ddim(self, x, steps=50, network=None):
        """DDIM with `steps` evenly spaced steps and eta = 0 from x_T = `x`
        (`GaussianDiffusion::sample_ddim`): x <- sqrt(alpha_bar_prev) x0_hat + sqrt(1 -
        alpha_bar_prev) eps at each step, eps = (x - sqrt(alpha_bar) x0_hat)/sqrt(1 - alpha_bar)
        the noise that the clipped x0_hat implies; returns the last continuous image, x0_hat of
        t = tau_1. With the averaged weights unless `network` says otherwise."""
        network = self.average if network is None else network
        t_max = self.schedule.timesteps
        # Rust's f64::round rounds halves away from zero, Python's round to even: floor(v + 1/2).
        taus = [math.floor(i * t_max / steps + 0.5) for i in range(steps + 1)]
        n = x.shape[0]
        for i in reversed(range(1, steps + 1)):
            t, previous = taus[i], taus[i - 1]
            predicted = network(x, torch.full((n,), t))
            x0 = self.predict_x0(x, t, predicted)
            a, a_prev = self.schedule.alpha_bars[t], self.schedule.alpha_bars[previous]
            # The noise the clipped x0_hat implies, not eps_hat (GLIDE's choice, and genmodels').
            implied = (x - x0 * float(np.float32(math.sqrt(a)))) / float(np.float32(math.sqrt(1.0 - a)))
            x = x0 * float(np.float32(math.sqrt(a_prev))) + implied * float(np.float32(math.sqrt(1.0 - a_prev)))
        return x

    def sample_ddim(self, n, steps=50, generator=None):
        """n images by DDIM (`Diffusion::sample_ddim` at eta = 0, genmodels' default sampler for
        the DDPM) from x_T ~ N(0, I), read out as binary pixels (x > 0, `Diffusion::to_grid`)."""
        return (self.ddim(torch.randn(n, 1, 28, 28, generator=generator), steps) > 0).float()

    @torch.no_grad()
    def sample_ancestral(self, n, generator=None):
        """The T reverse steps of p(x_{t-1}|x_t) = N(mu_theta, sigma_t^2), sigma_t^2 the posterior
        variance (beta~_2 at t = 1), with the averaged weights (`GaussianDiffusion::sample_ancestral`)."""
        s = self.schedule
        x = torch.randn(n, 1, 28, 28, generator=generator)
        for t in range(s.timesteps, 0, -1):
            predicted = self.average(x, torch.full((n,), t))
            x0 = self.predict_x0(x, t, predicted)
            a, a_prev, beta = s.alpha_bars[t], s.alpha_bars[t - 1], s.betas[t]
            c0 = math.sqrt(a_prev) * beta / (1.0 - a)
            ct = math.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a)
            x = x0 * float(np.float32(c0)) + x * float(np.float32(ct))
            if t > 1:
                x = x + torch.randn(x.shape, generator=generator) * math.sqrt(s.posterior_variance(t))
        return (x > 0).float()

    def load_burn(self, path):
        """Loads the exported trained network into both copies."""
        self.network.load_burn(path)
        self.average.load_state_dict(self.network.state_dict())
        return self


def load_ddpm(path):
    """The DDPM twin with the weights `reference_export` wrote (`ddpm.safetensors`: the trained
    network, `Diffusion::network()`), every burn name mapped explicitly."""
    return Ddpm().load_burn(path)


# By the CLI's model names.
MODELS = {
    "pixelcnn": PixelCnn,
    "gated-pixelcnn": GatedPixelCnn,
    "row-lstm": RowLstm,
    "diagonal-bilstm": DiagonalBiLstm,
    "vae": Vae,
    "dcgan": Dcgan,
    "ddpm": Ddpm,
}
BINARY_DATA = {
    "pixelcnn": True,
    "gated-pixelcnn": True,
    "row-lstm": True,
    "diagonal-bilstm": True,
    "vae": True,
    "dcgan": False,
    "ddpm": True,
}
