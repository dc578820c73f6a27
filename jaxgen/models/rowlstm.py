"""The Row LSTM of PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.1).

Order, input range, output modes and channel masks are those of `pixelcnn`.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxgen import models
from jaxgen.models import pixelcnn


class RowLSTMLayer(nn.Module):
  """Features [b, H, W, f] -> the residual update [b, H, W, f] of one Row LSTM layer.

  Input-to-state: a mask-B 1×k convolution of each row to the four gates (f/2 units each),
  computed for all rows at once. State-to-state: a 1×k convolution of the previous row's
  hidden state, run row by row with `lax.scan`; it needs no mask, since the whole previous
  row is in the past. A mask-B 1x1 convolution maps the hidden state back to f features.
  """
  kernel_size: int
  groups: int
  num_classes: int
  dtype: Any
  precision: Any

  @nn.compact
  def __call__(self, x, labels, row=None):
    """x [b, H, W, f]; in row mode (`pixelcnn`'s docstring) row `row`, [b, 1, W, f], whose
    recurrence starts from the previous row's state, kept in the cache."""
    features = x.shape[-1]
    units = features // 2
    k = self.kernel_size
    conv = functools.partial(pixelcnn.MaskedConv, groups=self.groups, dtype=self.dtype,
                             precision=self.precision)
    gates = conv(4 * units, (1, k), out_blocks=4)(x)
    gates = gates + pixelcnn.label_bias(labels, self.num_classes, 4 * units, self.dtype)
    kernel = self.param("state_to_state", nn.initializers.lecun_normal(), (k, units, 4 * units),
                        jnp.float32).astype(self.dtype)

    def row_step(carry, row_gates):
      """One row: (h, c) [b, W, units] each, row_gates [b, W, 4·units]."""
      h, c = carry
      z = row_gates + lax.conv_general_dilated(h, kernel, (1,), ((k // 2, k // 2),),
                                               dimension_numbers=("NWC", "WIO", "NWC"),
                                               precision=self.precision)
      i, f, o, g = jnp.split(z, 4, axis=-1)
      c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
      h = nn.sigmoid(o) * jnp.tanh(c)
      return (h, c), h

    batch, _, width, _ = gates.shape
    if row is not None:
      # (h, c) of the previous row and this one, stacked [2, 2, b, W, units] as a ring buffer.
      buffer = self.variable("cache", "state", jnp.zeros, (2, 2, batch, width, units),
                             gates.dtype)
      h, c = buffer.value[(row - 1) % 2]
      (h, c), hidden = row_step((h, c), gates[:, 0])
      buffer.value = buffer.value.at[row % 2].set(jnp.stack([h, c]))
      return conv(features)(hidden[:, None])
    zeros = jnp.zeros((batch, width, units), gates.dtype)
    _, hidden = lax.scan(row_step, (zeros, zeros), gates.transpose(1, 0, 2, 3))
    return conv(features)(hidden.transpose(1, 0, 2, 3))


@models.register("row_lstm", example_inputs=pixelcnn.example_inputs)
class RowLSTM(nn.Module):
  """Images [b, H, W, channels] in [-1, 1] -> parameters (see `pixelcnn`'s docstring).

  A mask-A first_kernel_size² convolution to `features`, `num_layers` residual
  `RowLSTMLayer`s, then `pixelcnn.OutputHead`.

  Receptive field: triangular, not the whole past. The state at (i, j) reads the states at
  (i-1, j-k//2..j+k//2), so row i-m is seen only within a cone that widens by k//2 columns
  per row upwards: with k = 3 and a first layer of half-width a = first_kernel_size//2, the
  rightmost pixel seen in row i-m is (i-m, j+a+m-1), whatever the depth. Pixels above and
  right of that edge, e.g. (i-1, j+a+1), are never seen; the Diagonal BiLSTM fixes this.

  Attributes:
    channels, num_params, output_mode, num_classes, dtype, precision: as `PixelCNN`.
    features: width of the residual stream (2h in the paper); each gate has features/2 units.
    kernel_size: k of the 1×k input-to-state and state-to-state convolutions.
  """
  channels: int
  num_params: int = 256
  output_mode: str = "subpixel"
  features: int = 128
  num_layers: int = 4
  kernel_size: int = 3
  first_kernel_size: int = 7
  head_features: int = 256
  num_classes: int = 0
  dtype: Any = jnp.float32
  precision: Any = None

  @nn.compact
  def __call__(self, x, labels=None, row=None):
    pixelcnn.check_call(x, labels, channels=self.channels, num_classes=self.num_classes,
                        output_mode=self.output_mode, who="RowLSTM")
    groups = pixelcnn.num_groups(self.output_mode, self.channels)
    k0 = self.first_kernel_size
    h = pixelcnn.MaskedConv(self.features, (k0, k0), mask="A", groups=groups, dtype=self.dtype,
                            precision=self.precision)(x, row)
    for _ in range(self.num_layers):
      h = h + RowLSTMLayer(self.kernel_size, groups, self.num_classes, self.dtype,
                           self.precision)(h, labels, row)
    return pixelcnn.OutputHead(self.channels, self.num_params, self.output_mode,
                               self.head_features, self.dtype, self.precision)(h)
