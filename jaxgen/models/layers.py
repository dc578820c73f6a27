"""A transposed convolution whose gradients run as ordinary convolutions.

`flax.linen.ConvTranspose` differentiates `lax.conv_transpose` automatically; the weight
gradient JAX derives for a strided one is a convolution with rhs dilation that XLA:CPU runs
on a slow generic path (a DCGAN-64 step ~12x slower). Here the transposed convolution is
defined as the adjoint of an ordinary strided convolution `conv`, and its VJP is written
out the way PyTorch computes it:
  forward  y  = conv^T(x)                      (the input gradient of `conv`)
  dx          = conv(dy)                       (an ordinary convolution)
  dkernel     = weight gradient of conv(dy) against cotangent x
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Padding = str | Sequence[tuple[int, int]]
_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _conv(u, kernel, strides, padding):
  """The ordinary strided convolution [b, H', W', features] -> [b, H, W, in_features]."""
  return lax.conv_general_dilated(u, kernel, strides, padding,
                                  dimension_numbers=_DIMENSION_NUMBERS)


def explicit_padding(kernel_hw, strides, padding: Padding) -> tuple[tuple[int, int], ...]:
  """Per-dimension (low, high) padding of the forward convolution this layer is adjoint to.

  Explicit pairs are PyTorch's ConvTranspose2d `padding`: what the forward conv pads.
  'SAME' makes the output exactly `strides` times the input and 'VALID' pads nothing, both
  as `lax.conv_transpose` does; a kernel smaller than its stride gives a negative high pad,
  which crops.
  """
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"padding={padding!r}: expected 'SAME', 'VALID' or ((lo, hi), (lo, hi))")
    totals = [k - s if padding.upper() == "SAME" else 0 for k, s in zip(kernel_hw, strides)]
    return tuple((max(t, 0) // 2, t - max(t, 0) // 2) for t in totals)
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _output_shape(x_shape, kernel_shape, strides, pads):
  """[batch, height', width', features]: PyTorch's ConvTranspose2d size, output_padding=0."""
  batch, *in_hw, _ = x_shape
  out_hw = ((n - 1) * s + k - lo - hi
            for n, k, s, (lo, hi) in zip(in_hw, kernel_shape[:2], strides, pads))
  return (batch, *out_hw, kernel_shape[2])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
  """The adjoint of `conv(., kernel, strides, padding)`: upsamples x.

  Args:
    x: [batch, height, width, in_features].
    kernel: the forward convolution's HWIO kernel [kh, kw, features, in_features].
    strides: (sh, sw).
    padding: explicit ((lo, hi), (lo, hi)) pads of the forward convolution
      (see `explicit_padding`).

  Returns:
    [batch, (height-1)*sh + kh - lo - hi, (width-1)*sw + kw - lo - hi, features]; with a
    4x4 kernel, stride 2 and padding 1 that is [batch, 2*height, 2*width, features].
  """
  out = jax.ShapeDtypeStruct(_output_shape(x.shape, kernel.shape, strides, padding), x.dtype)
  (y,) = jax.linear_transpose(lambda u: _conv(u, kernel, strides, padding), out)(x)
  return y


def _conv_transpose_fwd(x, kernel, strides, padding):
  return conv_transpose(x, kernel, strides, padding), (x, kernel)


def _conv_transpose_bwd(strides, padding, residuals, dy):
  x, kernel = residuals
  dx = _conv(dy, kernel, strides, padding)
  # <dy, conv^T(x; k)> = <conv(dy; k), x>, so dkernel is conv's weight gradient at input dy.
  (dkernel,) = jax.linear_transpose(lambda k: _conv(dy, k, strides, padding), kernel)(x)
  return dx, dkernel


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def lax_conv_transpose(x, kernel, strides, padding):
  """`conv_transpose` through `lax.conv_transpose` and JAX's own autodiff (the slow-on-CPU one)."""
  lax_padding = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel.shape[:2], padding)]
  return lax.conv_transpose(x, kernel, strides, lax_padding,
                            dimension_numbers=_DIMENSION_NUMBERS, transpose_kernel=True)


class ConvTranspose(nn.Module):
  """PyTorch ConvTranspose2d semantics on [batch, height, width, channels] inputs.

  The kernel is stored as the forward convolution's HWIO kernel
  [kh, kw, features, in_features] (the layout of Flax's `transpose_kernel=True`): this layer
  is the adjoint of `lax.conv_general_dilated` with that kernel, strides and padding, which
  maps [b, 2H, 2W, features] -> [b, H, W, in_features] for kernel 4, stride 2, padding 1.

  Attributes:
    custom_vjp: True runs the gradients as ordinary convolutions (`conv_transpose`); False
      uses `lax.conv_transpose` with JAX's autodiff, ~12x slower on CPU, unmeasured on GPU.
  """
  features: int
  kernel_size: tuple[int, int] = (4, 4)
  strides: tuple[int, int] = (2, 2)
  padding: Padding = ((1, 1), (1, 1))
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  # Fan-in is over in_features, the kernel's last axis in this layout.
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal(in_axis=-1,
                                                                         out_axis=-2)
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  custom_vjp: bool = True

  @nn.compact
  def __call__(self, x):
    """[batch, height, width, in_features] -> [batch, height', width', features]."""
    kernel_shape = (*self.kernel_size, self.features, x.shape[-1])
    kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    pads = explicit_padding(self.kernel_size, self.strides, self.padding)
    upsample = conv_transpose if self.custom_vjp else lax_conv_transpose
    y = upsample(x, kernel, tuple(self.strides), pads)
    return y if bias is None else y + bias
