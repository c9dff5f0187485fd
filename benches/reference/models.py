"""PyTorch twins of genmodels' autoregressive models (PixelCNN `small`, the Gated PixelCNN, the
PixelRNN Row LSTM and Diagonal BiLSTM), default VAE and default DCGAN.

Each class has the parameter shapes and the order of operations of its Rust original (the
file is named in its docstring), a training step that does what `genmodels_core::Trainer`
does per batch, and a `load_burn` method that loads the weights `reference_export` wrote with
burn's safetensors store, mapping every name explicitly and transposing where burn's layout
differs (a burn `Linear` weight is `[in, out]`, PyTorch's `[out, in]`; convolution and
transposed-convolution kernels have the same layout in both).
"""

import gzip
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


# By the CLI's model names.
MODELS = {
    "pixelcnn": PixelCnn,
    "gated-pixelcnn": GatedPixelCnn,
    "row-lstm": RowLstm,
    "diagonal-bilstm": DiagonalBiLstm,
    "vae": Vae,
    "dcgan": Dcgan,
}
BINARY_DATA = {
    "pixelcnn": True,
    "gated-pixelcnn": True,
    "row-lstm": True,
    "diagonal-bilstm": True,
    "vae": True,
    "dcgan": False,
}
