"""Autoregressive image networks: PixelCNN and Gated PixelCNN (the Row LSTM is in rowlstm.py).

Order: pixels come in raster-scan order (row by row, left to right) and, inside a pixel,
sub-pixel by sub-pixel R → G → B (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", §3.4). Every network takes images x [batch, height, width, channels] scaled to
[-1, 1] from 8 bits (x = k / 127.5 - 1) and returns the parameters of every conditional
at once, in one of two `output_mode`s:

  'subpixel'  [batch, height, width, channels, num_params]: sub-pixel c of pixel (i, j)
              depends on all pixels before (i, j) and on the sub-pixels < c of (i, j);
              e.g. num_params=256 logits of a per-sub-pixel softmax (flattening the last two
              axes gives likelihoods.categorical's [b, H, W, C·256]).
  'pixel'     [batch, height, width, num_params]: the parameters of pixel (i, j) depend
              only on the pixels before it, none of its own sub-pixels; a likelihood that
              couples R, G and B inside the pixel (PixelCNN++'s discretised logistic
              mixture) supplies the within-pixel order itself.

How: every feature map's channels are split into contiguous groups, one per sub-pixel
(`channel_groups`), and every convolution's kernel is multiplied by a constant mask
(`causal_mask`). At the centre tap, output group c sees input groups < c (mask 'A', the
first layer, which reads the image) or ≤ c (mask 'B', every later layer). 'pixel' mode is
the one-group case, so its first layer hides the whole centre pixel. Masked taps are exact
zeros: causality holds exactly, not approximately, as tests/models/test_pixelcnn.py checks.

Row mode, for fast sampling: every network also takes one row x [batch, 1, width, channels]
with its index `row`, and returns that row's parameters, given every earlier row as the
network saw it on earlier calls. Each layer that reads rows above keeps a ring buffer of its
own inputs' last rows in the mutable 'cache' collection (`row_window`), so a call costs one
row's work instead of the whole image's. Called for rows 0, 1, ... in order (a row may be
called again, as its pixels fill in), it returns exactly the full network's row.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import gan_parts

OUTPUT_MODES = ("subpixel", "pixel")
_MASKS = ("A", "B")


def num_groups(output_mode: str, channels: int) -> int:
  """Sub-pixel groups of the feature maps: one per channel, or one for the whole pixel."""
  return channels if output_mode == "subpixel" else 1


def channel_groups(n: int, groups: int, blocks: int = 1) -> np.ndarray:
  """The sub-pixel group of each of n channels: [n] ints in 0..groups-1.

  The n channels form `blocks` equal blocks (the tanh and sigmoid halves of a gate, an
  LSTM's four gates), each split into `groups` contiguous runs, so that every gate of a
  unit lands in that unit's group.
  """
  width = n // blocks
  if width < groups:
    raise UserError(f"a layer of width {width} cannot give each of the image's {groups} "
                    f"channels its own features: make every width at least {groups}")
  return np.tile(np.arange(width) * groups // width, blocks)


def causal_mask(kernel_size: tuple[int, int], centre: tuple[int, int], mask: str,
                in_groups: np.ndarray, out_groups: np.ndarray) -> np.ndarray:
  """The 0/1 HWIO mask [kh, kw, in, out] of a kernel whose `centre` tap is the output pixel.

  Taps before the centre in raster order are open, taps after it closed; at the centre,
  output group c sees input groups < c (mask 'A') or ≤ c (mask 'B').
  """
  if mask not in _MASKS:
    raise ValueError(f"mask={mask!r}: expected one of {_MASKS}")
  rows, cols = np.meshgrid(np.arange(kernel_size[0]), np.arange(kernel_size[1]), indexing="ij")
  ch, cw = centre
  before = (rows < ch) | ((rows == ch) & (cols < cw))
  at_centre = (rows == ch) & (cols == cw)
  see = np.less if mask == "A" else np.less_equal
  centre_mask = see(in_groups[:, None], out_groups[None, :])
  return (before[..., None, None] | (at_centre[..., None, None] & centre_mask)).astype(np.float32)


def row_window(module: nn.Module, x_row, row, rows: int, name: str = "rows"):
  """Input rows row-rows+1 .. row [b, rows, W, c] of a layer called row by row, zeros above
  the image: x_row [b, 1, W, c] goes into slot row % rows of a ring buffer in `module`'s
  'cache' collection, overwriting the row `rows` back, which no later call needs."""
  buffer = module.variable("cache", name, jnp.zeros, (x_row.shape[0], rows, *x_row.shape[2:]),
                           x_row.dtype)
  buffer.value = lax.dynamic_update_slice_in_dim(buffer.value, x_row, row % rows, axis=1)
  return jnp.take(buffer.value, (row - rows + 1 + jnp.arange(rows)) % rows, axis=1)


class MaskedConv(nn.Module):
  """A stride-1 convolution [b, H, W, in] -> [b, H, W, features] that reads only the past.

  The output at (i, j) is aligned with the kernel's `centre` tap; a centre in the kernel's
  last row gives a convolution cropped to the rows above and including i (the Gated
  PixelCNN's vertical stack), a centre in its last column one cropped to the left. Masked
  taps stay in the kernel parameter (and in parameter counts) but get zero gradient.

  Attributes:
    kernel_size: (kh, kw).
    mask: 'A', 'B' (see `causal_mask`) or None, for inputs that lie wholly in the past.
    centre: (row, column) of the centre tap; (kh // 2, kw // 2) when None.
    groups: sub-pixel groups (`num_groups`).
    out_blocks: gate blocks among the outputs (see `channel_groups`).
    dtype: computation dtype; parameters stay float32.
    precision: lax precision of the convolution.
    kernel_init: the kernel's initialiser (zeros makes a residual branch start closed).
  """
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  mask: str | None = "B"
  centre: tuple[int, int] | None = None
  groups: int = 1
  out_blocks: int = 1
  dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x, row=None):
    """x [b, H, W, in] -> [b, H, W, features]; in row mode (see the module docstring) x is
    row `row`, [b, 1, W, in], and so is the output."""
    kh, kw = self.kernel_size
    ch, cw = self.centre or (kh // 2, kw // 2)
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    if self.mask is not None:
      kernel = kernel * causal_mask(
          (kh, kw), (ch, cw), self.mask, channel_groups(x.shape[-1], self.groups),
          channel_groups(self.features, self.groups, self.out_blocks))
    pad_rows = (ch, kh - 1 - ch)
    if row is not None:
      if kh - 1 > ch and self.mask is None:
        raise ValueError(f"row mode needs a kernel without open rows below its centre, got "
                         f"kernel_size={self.kernel_size}, centre={(ch, cw)}, mask=None")
      # Rows below the centre are masked: drop them, and read the rows above from the cache.
      kernel, pad_rows = kernel[:ch + 1], (0, 0)
      if ch:
        x = row_window(self, x, row, ch + 1)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = lax.conv_general_dilated(x, kernel, (1, 1), (pad_rows, (cw, kw - 1 - cw)),
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 precision=self.precision)
    return y + bias


class OutputHead(nn.Module):
  """Features [b, H, W, f] -> parameters in `output_mode`'s layout (see the module docstring).

  ReLU, a mask-B 1x1 convolution to `features`, ReLU, a mask-B 1x1 convolution to the
  parameters, computed in float32 whatever the network's dtype.
  """
  channels: int
  num_params: int
  output_mode: str
  features: int
  dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, h):
    subpixel = self.output_mode == "subpixel"
    conv = functools.partial(MaskedConv, groups=num_groups(self.output_mode, self.channels),
                             precision=self.precision)
    h = conv(self.features, dtype=self.dtype)(nn.relu(h))
    out = self.num_params * (self.channels if subpixel else 1)
    y = conv(out, dtype=jnp.float32)(nn.relu(h))
    return y.reshape(*y.shape[:-1], self.channels, self.num_params) if subpixel else y


def check_call(x, labels, *, channels: int, num_classes: int, output_mode: str, who: str):
  """Images must be [batch, height, width, channels]; labels given iff the model is conditional."""
  if output_mode not in OUTPUT_MODES:
    raise UserError(f"{who} output_mode={output_mode!r}: expected one of "
                    f"{', '.join(OUTPUT_MODES)}; set model.output_mode")
  if x.ndim != 4 or x.shape[-1] != channels:
    raise UserError(f"{who} got images of shape {tuple(x.shape)}: expected [batch, height, "
                    f"width, {channels}] (channels={channels}); set model.channels to the "
                    "data's channels")
  gan_parts.check_labels(labels, num_classes, who)


def label_bias(labels, num_classes: int, features: int, dtype: Any):
  """A learned per-class bias [b, 1, 1, features] (0 when unconditional); call it in compact."""
  if not num_classes:
    return 0.0
  return nn.Embed(num_classes, features, dtype=dtype)(labels)[:, None, None, :]


# Fashion-MNIST's size. The networks are fully convolutional: the size shapes the activations,
# never the parameters.
_EXAMPLE_SIZE = 28


def example_inputs(module: nn.Module, batch: int):
  """Init arguments of an autoregressive network: images [batch, 28, 28, channels], labels."""
  x = jnp.zeros((batch, _EXAMPLE_SIZE, _EXAMPLE_SIZE, module.channels))
  return (x, gan_parts.example_labels(module, batch)), {}


@models.register("pixelcnn", example_inputs=example_inputs)
class PixelCNN(nn.Module):
  """Images [b, H, W, channels] in [-1, 1] -> parameters (see the module docstring).

  A mask-A first_kernel_size² convolution, then `num_blocks` residual blocks of mask-B
  convolutions ReLU-1x1 (features/2) → ReLU-k×k (features/2) → ReLU-1x1 (features), the
  PixelRNN paper's residual block, then `OutputHead`.

  Receptive field: stacked masked k×k convolutions have a blind spot (van den Oord et al.
  2016b, "Conditional Image Generation with PixelCNN Decoders"): above-right pixels that
  no chain of masked taps reaches. With a 3x3 first layer and one block (two 3x3 layers),
  output (i, j) misses (i-1, j+2), which its 5x5 window covers; the blind spot grows with
  depth. GatedPixelCNN removes it.

  Attributes:
    channels: image channels (1 or 3).
    num_params: parameters per sub-pixel ('subpixel') or per pixel ('pixel').
    output_mode: 'subpixel' or 'pixel'.
    features: width of the residual stream (2h in the paper).
    num_classes: > 0 adds a learned per-class bias inside every block; labels [b] required.
    dtype: computation dtype (keep float32 for likelihoods); parameters stay float32.
    precision: lax precision of every convolution.
  """
  channels: int
  num_params: int = 256
  output_mode: str = "subpixel"
  features: int = 128
  num_blocks: int = 7
  kernel_size: int = 3
  first_kernel_size: int = 7
  head_features: int = 256
  num_classes: int = 0
  dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x, labels=None, row=None):
    check_call(x, labels, channels=self.channels, num_classes=self.num_classes,
               output_mode=self.output_mode, who="PixelCNN")
    conv = functools.partial(MaskedConv, groups=num_groups(self.output_mode, self.channels),
                             dtype=self.dtype, precision=self.precision)
    k0, k, inner = self.first_kernel_size, self.kernel_size, self.features // 2
    h = conv(self.features, (k0, k0), mask="A")(x, row)
    for _ in range(self.num_blocks):
      y = conv(inner)(nn.relu(h))
      y = conv(inner, (k, k))(nn.relu(y), row) + label_bias(labels, self.num_classes, inner,
                                                           self.dtype)
      h = h + conv(self.features)(nn.relu(y))
    return OutputHead(self.channels, self.num_params, self.output_mode, self.head_features,
                      self.dtype, self.precision)(h)


def _gate(x):
  """[..., 2p] -> [..., p]: tanh(first half) ⊙ sigmoid(second half)."""
  a, b = jnp.split(x, 2, axis=-1)
  return jnp.tanh(a) * nn.sigmoid(b)


class DownShift(nn.Module):
  """[b, H, W, f] -> [b, H, W, f]: row i holds row i-1, row 0 zeros (in row mode, the
  previous call's row, kept in the cache)."""

  @nn.compact
  def __call__(self, x, row=None):
    if row is None:
      return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
    return row_window(self, x, row, 2)[:, :1]


@models.register("gated_pixelcnn", example_inputs=example_inputs)
class GatedPixelCNN(nn.Module):
  """Images [b, H, W, channels] in [-1, 1] -> parameters (see the module docstring).

  van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders". Each of
  `num_layers` layers (the first with first_kernel_size k0, the rest kernel_size k) has
    vertical stack    a (k//2+1)×k convolution cropped to rows ≤ i, all columns j±k//2;
    horizontal stack  a 1×(k//2+1) convolution cropped to columns ≤ j (mask A in the first
                      layer, B after), plus a 1x1 convolution of the vertical stack's
                      pre-activations shifted down a row (so it brings rows < i only);
  each gated tanh ⊙ sigmoid, with the class bias added inside both gates. The horizontal
  stack adds its gated output back through a 1x1 convolution (a residual, from layer 2 on)
  and to a skip sum, which feeds `OutputHead`.

  Receptive field: no blind spot. Output (i, j) sees every pixel in rows i-R-1..i-1,
  columns j-R..j+R, and pixels j-R..j-1 of row i, with R = k0//2 + (num_layers-1)·(k//2);
  once R + 1 reaches the image's size, it sees every pixel before it.

  Attributes:
    channels, num_params, output_mode, num_classes, dtype, precision: as `PixelCNN`.
    features: width p of both stacks (gates are 2p wide).
  """
  channels: int
  num_params: int = 256
  output_mode: str = "subpixel"
  features: int = 64
  num_layers: int = 12
  kernel_size: int = 3
  first_kernel_size: int = 7
  head_features: int = 256
  num_classes: int = 0
  dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x, labels=None, row=None):
    check_call(x, labels, channels=self.channels, num_classes=self.num_classes,
               output_mode=self.output_mode, who="GatedPixelCNN")
    conv = functools.partial(MaskedConv, groups=num_groups(self.output_mode, self.channels),
                             dtype=self.dtype, precision=self.precision)
    p = self.features
    v, h, skip = x, x, 0.0
    for layer in range(self.num_layers):
      first = layer == 0
      k = self.first_kernel_size if first else self.kernel_size
      # Row i of the vertical stack has seen pixels right of (i, j) in row i: harmless,
      # since only its copy shifted down a row ever reaches the horizontal stack.
      v_pre = conv(2 * p, (k // 2 + 1, k), mask=None, centre=(k // 2, k // 2))(v, row)
      h_pre = conv(2 * p, (1, k // 2 + 1), mask="A" if first else "B", centre=(0, k // 2),
                   out_blocks=2)(h)
      h_pre = h_pre + conv(2 * p, mask=None)(DownShift()(v_pre, row))
      gated = _gate(h_pre + label_bias(labels, self.num_classes, 2 * p, self.dtype))
      skip = skip + conv(p)(gated)
      if layer + 1 < self.num_layers:  # The last layer feeds only the skip sum.
        v = _gate(v_pre + label_bias(labels, self.num_classes, 2 * p, self.dtype))
        # The first layer reads the image, whose width differs from p: no residual there.
        h = conv(p)(gated) + (0.0 if first else h)
    return OutputHead(self.channels, self.num_params, self.output_mode, self.head_features,
                      self.dtype, self.precision)(skip)
