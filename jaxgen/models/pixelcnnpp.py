"""PixelCNN++'s own network (Salimans et al. 2017, "PixelCNN++: Improving the PixelCNN with
Discretized Logistic Mixture Likelihood and Other Modifications"; openai/pixel-cnn,
`pixel_cnn_pp/model.py`): a U-Net of gated ResNet blocks over two causal streams.

Streams. `u` sees the rows above a pixel: its convolutions are 2×3 kernels whose rows end at
the output's row ("down-shifted"). `ul` sees the rows above and the pixels left of it in its
row: 2×2 kernels ending at the output's row and column ("down-right-shifted"). Both start
from the image shifted (u down a row; ul as a 1×3 row shifted down plus a 2×1 column shifted
right), so nothing either stream holds at (i, j) has read pixel (i, j) or any later one, and
no convolution after the first can change that. No channel masks: every output is one
pixel's parameters ('pixel' output mode, see `pixelcnn`), so R, G, B are coupled by the
likelihood (the logistic mixture's linear mean coupling), not by the network.

Resolutions. `levels` of them: the up pass runs `num_resnet` blocks per level and halves both
sides between levels with stride-2 shifted convolutions; the down pass doubles them back
with shifted transposed convolutions and runs num_resnet (+1 below the coarsest) blocks per
level, each reading the up pass's matching output as its shortcut: u's into u, [u, ul's]
into ul. Blocks: x + a ⊙ σ(b), (a, b) = conv(dropout(ce(conv(ce(x)) + nin(ce(aux))))) with
ce the concat-ELU [elu(x), elu(−x)] and the class bias added to (a, b).

Row mode (`pixelcnn`'s docstring): called with row i, level l computes only its row i >> l.
Strided convolutions read their two input rows from a three-row ring buffer, since the
finer level's row 2I+1 recomputes coarse row I from rows 2I−1 and 2I (both final by then);
a transposed convolution maps coarse row I to finer row 2I or 2I+1 with its kernel row 0 or
1. Every 2-row kernel reads its row above from its cache, as in the other networks.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import layers, pixelcnn

# Kernels of the two streams: u's are 2×3 (columns j−1..j+1 of rows i−1, i), ul's 2×2
# (columns j−1, j). Both are aligned at tap (1, 1).
_U, _UL = (2, 3), (2, 2)


def concat_elu(x):
  """[..., f] -> [..., 2f]: ELU of x and of −x, so no half of the signal is cut off."""
  return nn.elu(jnp.concatenate([x, -x], axis=-1))


def _right_shift(x):
  """[b, H, W, f]: column j holds column j−1, column 0 zeros (row-local: fine in row mode)."""
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def _level_row(row, level: int):
  """The row of resolution `level` that row mode computes for image row `row`."""
  return None if row is None else row >> level


class ShiftedDownsample(nn.Module):
  """A stride-2 shifted convolution [b, H, W, f] -> [b, H/2, W/2, features]: output row I
  reads input rows 2I−1 and 2I; a 2×3 kernel columns 2J−1..2J+1, a 2×2 kernel 2J−1, 2J."""
  features: int
  kernel_size: tuple[int, int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, row=None):
    """In row mode x is input row `row` [b, 1, W, f] and the output is row row // 2."""
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (kh, kw, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    columns = (1, kw - 2)
    if row is None:
      rows = (1, 0)
    else:
      window = pixelcnn.row_window(self, x, row, 3)  # Rows row−2 .. row.
      # Rows 2I−1, 2I of I = row // 2: the last two for an even row, the first two for odd.
      x, rows = lax.dynamic_slice_in_dim(window, 1 - row % 2, 2, axis=1), (0, 0)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    return layers.conv(x, kernel, (2, 2), (rows, columns)) + bias


class ShiftedUpsample(nn.Module):
  """A stride-2 shifted transposed convolution [b, H, W, f] -> [b, 2H, 2W, features]: input
  row I feeds output rows 2I (kernel row 0) and 2I+1 (row 1); a 2×3 kernel's column J feeds
  columns 2J−1..2J+1, a 2×2 kernel's 2J, 2J+1. So nothing moves up or left of where it was."""
  features: int
  kernel_size: tuple[int, int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, row=None):
    """In row mode x is input row row // 2 [b, 1, W, f] and the output is row `row`."""
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
                        (kh, kw, self.features, x.shape[-1]), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    # Both output rows of an input row at once: kernel rows become output channels [k, f],
    # so the transposed convolution only strides along the width.
    by_width = kernel.transpose(1, 0, 2, 3).reshape(1, kw, kh * self.features, x.shape[-1])
    y = layers.conv_transpose(x, by_width, (1, 2), ((0, 0), (kw - 2, 0)))
    b, h, w, _ = y.shape
    y = y.reshape(b, h, w, kh, self.features)
    if row is None:
      return y.transpose(0, 1, 3, 2, 4).reshape(b, h * kh, w, self.features) + bias
    return lax.dynamic_index_in_dim(y, row % 2, axis=3, keepdims=False) + bias


class GatedResnet(nn.Module):
  """x [b, H, W, f] -> x + a ⊙ σ(b), the block of the module docstring; `aux` (or None) is
  the shortcut input, `kernel_size` the stream's (2×3 for u, 2×2 for ul)."""
  kernel_size: tuple[int, int]
  dropout: float
  num_classes: int
  dtype: Any
  precision: Any

  @nn.compact
  def __call__(self, x, aux, labels, row=None):
    features = x.shape[-1]
    conv = functools.partial(pixelcnn.MaskedConv, mask=None, dtype=self.dtype,
                             precision=self.precision)
    shifted = functools.partial(conv, kernel_size=self.kernel_size, centre=(1, 1))
    c = shifted(features)(concat_elu(x), row)
    if aux is not None:
      c = c + conv(features)(concat_elu(aux))
    c = nn.Dropout(self.dropout, deterministic=not self.has_rng("dropout"))(concat_elu(c))
    # PixelCNN++ starts each residual branch small (init_scale 0.1): deep stacks stay stable.
    c = shifted(2 * features, kernel_init=nn.initializers.variance_scaling(
        0.01, "fan_in", "truncated_normal"))(c, row)
    a, b = jnp.split(c + pixelcnn.label_bias(labels, self.num_classes, 2 * features,
                                             self.dtype), 2, axis=-1)
    return x + a * nn.sigmoid(b)


@models.register("pixelcnnpp_unet", example_inputs=pixelcnn.example_inputs)
class PixelCNNPPUNet(nn.Module):
  """Images [b, H, W, channels] in [-1, 1] -> parameters [b, H, W, num_params] per pixel.

  H and W must divide by 2^(levels−1). 'subpixel' output (a 256-way softmax) is accepted for
  one channel only, where a pixel is a sub-pixel: [b, H, W, 1, num_params].

  Attributes:
    channels, num_params, output_mode, num_classes, dtype: as `pixelcnn.PixelCNN`.
    precision: lax precision of the stride-1 convolutions (the strided ones run through
      `layers`, whose custom gradients keep XLA:CPU off its slow paths, at the default).
    features: width of both streams at every resolution (the paper's 160 on CIFAR-10).
    num_resnet: gated ResNet blocks per resolution in the up pass (the paper's 5).
    levels: resolutions (the paper's 3: 32, 16, 8 on CIFAR-10; 28, 14, 7 here).
    dropout: rate inside every block, active only when apply gets a 'dropout' rng (training).
  """
  channels: int
  num_params: int = 30
  output_mode: str = "pixel"
  features: int = 160
  num_resnet: int = 5
  levels: int = 3
  dropout: float = 0.5
  num_classes: int = 0
  dtype: Any = jnp.float32
  precision: Any = None

  def _check(self, x, labels, row):
    pixelcnn.check_call(x, labels, channels=self.channels, num_classes=self.num_classes,
                        output_mode=self.output_mode, who="PixelCNNPPUNet")
    if self.output_mode == "subpixel" and self.channels > 1:
      raise UserError(f"PixelCNNPPUNet predicts whole pixels, and {self.channels} channels "
                      "need a within-pixel order: set model.likelihood='logistic_mixture'")
    side = 2 ** (self.levels - 1)
    height = x.shape[1] if row is None else side
    if height % side or x.shape[2] % side:
      raise UserError(f"PixelCNNPPUNet with levels={self.levels} halves the image "
                      f"{self.levels - 1} times: {x.shape[1]}×{x.shape[2]} must divide by "
                      f"{side}; lower model.levels or pad the images")

  @nn.compact
  def __call__(self, x, labels=None, row=None):
    self._check(x, labels, row)
    f = self.features
    conv = functools.partial(pixelcnn.MaskedConv, f, mask=None, dtype=self.dtype,
                             precision=self.precision)
    block = functools.partial(GatedResnet, dropout=self.dropout, num_classes=self.num_classes,
                              dtype=self.dtype, precision=self.precision)
    # A channel of ones tells the image apart from the zero padding around it.
    x = jnp.concatenate([x, jnp.ones_like(x[..., :1])], axis=-1)
    u = pixelcnn.DownShift()(conv(_U, centre=(1, 1))(x, row), row)
    ul = (pixelcnn.DownShift()(conv((1, 3), centre=(0, 1))(x), row)
          + _right_shift(conv((2, 1), centre=(1, 0))(x, row)))
    us, uls = [u], [ul]
    for level in range(self.levels):
      r = _level_row(row, level)
      if level:
        above = _level_row(row, level - 1)
        u = ShiftedDownsample(f, _U, self.dtype)(u, above)
        ul = ShiftedDownsample(f, _UL, self.dtype)(ul, above)
        us.append(u)
        uls.append(ul)
      for _ in range(self.num_resnet):
        u = block(_U)(u, None, labels, r)
        ul = block(_UL)(ul, u, labels, r)
        us.append(u)
        uls.append(ul)
    u, ul = us.pop(), uls.pop()
    for level in reversed(range(self.levels)):
      r = _level_row(row, level)
      finer = level < self.levels - 1
      if finer:
        u = ShiftedUpsample(f, _U, self.dtype)(u, r)
        ul = ShiftedUpsample(f, _UL, self.dtype)(ul, r)
      for _ in range(self.num_resnet + finer):
        u = block(_U)(u, us.pop(), labels, r)
        ul = block(_UL)(ul, jnp.concatenate([u, uls.pop()], axis=-1), labels, r)
    subpixel = self.output_mode == "subpixel"
    y = pixelcnn.MaskedConv(self.num_params, mask=None, dtype=jnp.float32,
                            precision=self.precision)(nn.elu(ul))
    return y[..., None, :] if subpixel else y
