"""Strided and transposed convolutions whose gradients avoid XLA:CPU's slow paths.

A strided convolution `conv` and its adjoint `conv_transpose` are each other's gradient:
  conv:            y = conv(u)      du = conv^T(dy)    dkernel = conv's weight gradient
  conv_transpose:  y = conv^T(x)    dx = conv(dy)      dkernel = conv's weight gradient at dy
which is how PyTorch computes them. Left to JAX's autodiff (what flax.linen's Conv and
ConvTranspose do), the weight gradient of a strided `lax.conv_transpose` lands on a slow
generic XLA:CPU path: a DCGAN step on 2 CPU cores runs 3-12x slower.

conv^T runs as one stride-1 convolution that produces every output phase as channels
(sub-pixel convolution), then depth-to-space, rather than as a convolution over an input
dilated with zeros that it multiplies: 13% off a DCGAN-64 step on CPU.

On one CPU device all three run as oneDNN's convolutions instead, where it is installed
(`jaxgen.kernels.onednn`: about 2x faster than XLA's kernels at the U-Net's shapes).
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxgen.kernels import onednn

Padding = str | Sequence[tuple[int, int]]
Pads = tuple[tuple[int, int], ...]
_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def _conv(u, kernel, strides, padding):
  """The strided convolution [b, H', W', features] -> [b, H, W, in_features], HWIO kernel."""
  return lax.conv_general_dilated(u, kernel, strides, padding,
                                  dimension_numbers=_DIMENSION_NUMBERS)


# Stride-1 weight gradients are summed over micro-batches of about this many input positions:
# on XLA:CPU the weight gradient of one 3×3 convolution over a whole batch of 28×28 maps runs
# 5–10x slower than the same sum over 16-image slices (batch 128, 32->32 channels: 847 ms
# against 103 ms; 14×14 maps are 2x slower whole, 7×7 not at all), while the forward pass
# scales linearly; the slices add no FLOPs. Strided ones are not sliced: the DCGAN step ran
# 30% slower so (207 against 159 ms, benchmarks/throughput.py).
_KERNEL_GRAD_POSITIONS = 16 * 28 * 28


def _conv_kernel_grad(u, dy, kernel_like, strides, padding):
  """The gradient of <dy, conv(u, kernel)> with respect to the kernel."""
  spec = jax.ShapeDtypeStruct(kernel_like.shape, kernel_like.dtype)
  chunk = u.shape[0]
  if tuple(strides) == (1, 1):
    chunk = max(1, _KERNEL_GRAD_POSITIONS // (u.shape[1] * u.shape[2]))
  dkernel = None
  for start in range(0, u.shape[0], chunk):
    (part,) = jax.linear_transpose(
        lambda k, s=start: _conv(u[s:s + chunk], k, strides, padding), spec)(
            dy[start:start + chunk])
    dkernel = part if dkernel is None else dkernel + part
  return dkernel


def _phase_kernel(kernel, strides):
  """[kh, kw, features, in_features] -> [jh, jw, in_features, sh * sw * features].

  Output position o of conv^T gathers kernel taps t = o + low_pad (mod s), one every s;
  grouping taps by that residue (zero-padding the kernel to jh = ceil(kh / sh) taps per
  phase) and flipping them gives each phase's stride-1 kernel.
  """
  (kh, kw, features, in_features), (sh, sw) = kernel.shape, strides
  jh, jw = -(-kh // sh), -(-kw // sw)
  kernel = jnp.pad(kernel, ((0, jh * sh - kh), (0, jw * sw - kw), (0, 0), (0, 0)))
  kernel = kernel.reshape(jh, sh, jw, sw, features, in_features)[::-1, :, ::-1]
  return kernel.transpose(0, 2, 5, 1, 3, 4).reshape(jh, jw, in_features, sh * sw * features)


def _transpose(x, kernel, strides, padding, out_hw):
  """conv^T: x [b, h, w, in_features] -> [b, *out_hw, features], the adjoint of `_conv`.

  out_hw may exceed the smallest input size that `_conv` maps to [h, w]; the rows and
  columns beyond it get the gradient of what the convolution reads there.
  """
  batch, *in_hw, _ = x.shape
  features = kernel.shape[2]
  phase_kernel = _phase_kernel(kernel, strides)
  # Phase grid size: enough whole strides to cover the low padding plus the output.
  grid = [-(-(n + lo) // s) for n, (lo, _), s in zip(out_hw, padding, strides)]
  pads = [(j - 1, g - n) for j, g, n in zip(phase_kernel.shape[:2], grid, in_hw)]
  phases = lax.conv_general_dilated(x, phase_kernel, (1, 1), pads,
                                    dimension_numbers=_DIMENSION_NUMBERS)
  (gh, gw), (sh, sw) = grid, strides
  y = phases.reshape(batch, gh, gw, sh, sw, features).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(batch, gh * sh, gw * sw, features)
  (low_h, _), (low_w, _) = padding
  return y[:, low_h:low_h + out_hw[0], low_w:low_w + out_hw[1]]


def _transposed_hw(in_hw, kernel_hw, strides, padding):
  """PyTorch ConvTranspose2d's output size (output_padding=0)."""
  return tuple((n - 1) * s + k - lo - hi
               for n, k, s, (lo, hi) in zip(in_hw, kernel_hw, strides, padding))


def _forward(u, kernel, strides, padding):
  if onednn.enabled(padding, u, kernel):
    return onednn.conv(u, kernel, strides, padding)
  return _conv(u, kernel, strides, padding)


def _input_grad(dy, kernel, strides, padding, in_hw):
  """conv^T, the adjoint of `_forward` in its input, sized [b, *in_hw, kernel's in_features]."""
  if onednn.enabled(padding, dy, kernel):
    in_shape = (dy.shape[0], *in_hw, kernel.shape[2])
    return onednn.conv_input_grad(dy, kernel, in_shape, strides, padding)
  return _transpose(dy, kernel, strides, padding, in_hw)


def _kernel_grad(u, dy, kernel, strides, padding):
  if onednn.enabled(padding, u, dy):
    return onednn.conv_kernel_grad(u, dy, kernel.shape, strides, padding)
  return _conv_kernel_grad(u, dy, kernel, strides, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(u, kernel, strides: tuple[int, int], padding: Pads):
  """`lax.conv_general_dilated` with explicit pads, its input gradient run as `conv_transpose`.

  Args:
    u: [batch, height, width, in_features].
    kernel: HWIO [kh, kw, in_features, features].

  Returns:
    [batch, height', width', features].
  """
  return _forward(u, kernel, strides, padding)


def _conv_fwd(u, kernel, strides, padding):
  return _forward(u, kernel, strides, padding), (u, kernel)


def _conv_bwd(strides, padding, residuals, dy):
  u, kernel = residuals
  du = _input_grad(dy, kernel, strides, padding, u.shape[1:3])
  return du, _kernel_grad(u, dy, kernel, strides, padding)


conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, strides: tuple[int, int], padding: Pads):
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
  out_hw = _transposed_hw(x.shape[1:3], kernel.shape[:2], strides, padding)
  return _input_grad(x, kernel, strides, padding, out_hw)


def _conv_transpose_fwd(x, kernel, strides, padding):
  return conv_transpose(x, kernel, strides, padding), (x, kernel)


def _conv_transpose_bwd(strides, padding, residuals, dy):
  x, kernel = residuals
  # <dy, conv^T(x; k)> = <conv(dy; k), x>: dkernel is conv's weight gradient at input dy.
  return _forward(dy, kernel, strides, padding), _kernel_grad(dy, x, kernel, strides, padding)


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def _lax_conv_transpose(x, kernel, strides, padding):
  """`conv_transpose` as `lax.conv_transpose` differentiated by JAX (nn.ConvTranspose's way)."""
  lax_padding = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel.shape[:2], padding)]
  return lax.conv_transpose(x, kernel, strides, lax_padding,
                            dimension_numbers=_DIMENSION_NUMBERS, transpose_kernel=True)


def explicit_padding(kernel_hw, strides, padding: Padding) -> Pads:
  """Per-dimension (low, high) padding of the forward convolution a transposed one inverts.

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


class _ConvBase(nn.Module):
  """Shared fields of `Conv` and `ConvTranspose`.

  Attributes:
    custom_vjp: True uses `conv` / `conv_transpose`; False leaves the gradients to JAX's
      autodiff of lax, as nn.Conv / nn.ConvTranspose do: 3-12x slower DCGAN steps on CPU,
      unmeasured on GPU.
  """
  features: int
  kernel_size: tuple[int, int] = (4, 4)
  strides: tuple[int, int] = (2, 2)
  padding: Padding = ((1, 1), (1, 1))
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  custom_vjp: bool = True

  def _params(self, kernel_shape, x):
    """(x, kernel, bias or None), promoted to the computation dtype."""
    kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    return nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)


class Conv(_ConvBase):
  """A convolution on [batch, height, width, channels], HWIO kernel [kh, kw, in, features].

  Same parameters and outputs as `nn.Conv`; its input gradient runs as `conv_transpose`.
  """

  @nn.compact
  def __call__(self, x):
    x, kernel, bias = self._params((*self.kernel_size, x.shape[-1], self.features), x)
    padding = self.padding
    if isinstance(padding, str):
      padding = lax.padtype_to_pads(x.shape[1:3], self.kernel_size, self.strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    y = (conv if self.custom_vjp else _conv)(x, kernel, tuple(self.strides), pads)
    return y if bias is None else y + bias


class ConvTranspose(_ConvBase):
  """PyTorch ConvTranspose2d semantics on [batch, height, width, channels] inputs.

  The kernel is stored as the forward convolution's HWIO kernel
  [kh, kw, features, in_features] (the layout of Flax's `transpose_kernel=True`): this layer
  is the adjoint of `lax.conv_general_dilated` with that kernel, strides and padding, which
  maps [b, 2H, 2W, features] -> [b, H, W, in_features] for kernel 4, stride 2, padding 1.
  """
  # Fan-in is over in_features, the kernel's last axis in this layout.
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal(in_axis=-1,
                                                                         out_axis=-2)

  @nn.compact
  def __call__(self, x):
    """[batch, height, width, in_features] -> [batch, height', width', features]."""
    x, kernel, bias = self._params((*self.kernel_size, self.features, x.shape[-1]), x)
    pads = explicit_padding(self.kernel_size, self.strides, self.padding)
    upsample = conv_transpose if self.custom_vjp else _lax_conv_transpose
    y = upsample(x, kernel, tuple(self.strides), pads)
    return y if bias is None else y + bias
