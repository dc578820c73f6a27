"""SRGAN's generator (Ledig et al. 2017, "SRResNet"): low-resolution images [b, h, w, C] in
[-1, 1] -> [b, h·factor, w·factor, C].

A 3×3 convolution, `blocks` residual blocks (conv-PReLU-conv), a skip around them, then
sub-pixel upsampling stages (a convolution to r²·features channels and a depth-to-space
shuffle by r, PReLU): ×2 stages while the factor is even, one more for what remains. Unlike
the paper there is no BatchNorm (EDSR, ESRGAN: it costs quality in super-resolution and
would make an image's upscaling depend on its batch), and the output is a residual added to
the `upsample` interpolation of the input, its last layer zero-initialised: an untrained
network *is* that baseline, and training learns only what interpolation misses.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.models import layers


def _conv(features: int, dtype: Any, **kwargs) -> layers.Conv:
  return layers.Conv(features, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), dtype=dtype,
                     **kwargs)


def depth_to_space(x, r: int):
  """[b, h, w, r·r·c] -> [b, h·r, w·r, c]: channel block (i, j) becomes sub-pixel (i, j)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, r, r, c // (r * r))
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * r, w * r, c // (r * r))


def upsampling_stages(factor: int) -> list[int]:
  """The shuffle factor of each stage: 2s while even, then the rest (4 -> [2, 2], 6 -> [2, 3])."""
  stages = []
  while factor % 2 == 0 and factor > 1:
    stages.append(2)
    factor //= 2
  return stages + ([factor] if factor > 1 else [])


def _example_inputs(module, batch: int):
  return (jnp.zeros((batch, 7, 7, module.channels)),), {}


@models.register("srresnet", example_inputs=_example_inputs)
class SRResNet(nn.Module):
  """Attributes:
    factor: the upscaling factor (an integer ≥ 2).
    channels: image channels, in and out.
    features: width of every convolution.
    blocks: residual blocks at the low resolution.
    upsample: the interpolation the output is a residual over: 'cubic', 'linear', 'nearest'.
  """
  factor: int = 4
  channels: int = 1
  features: int = 64
  blocks: int = 8
  upsample: str = "cubic"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, low):
    b, h, w, _ = low.shape
    x = nn.PReLU(param_dtype=jnp.float32)(_conv(self.features, self.dtype)(low.astype(self.dtype)))
    skip = x
    for _ in range(self.blocks):
      y = nn.PReLU(param_dtype=jnp.float32)(_conv(self.features, self.dtype)(x))
      x = x + _conv(self.features, self.dtype)(y)
    x = skip + _conv(self.features, self.dtype)(x)
    for r in upsampling_stages(self.factor):
      x = nn.PReLU(param_dtype=jnp.float32)(
          depth_to_space(_conv(self.features * r * r, self.dtype)(x), r))
    residual = _conv(self.channels, self.dtype, kernel_init=nn.initializers.zeros_init())(x)
    base = jax.image.resize(low.astype(jnp.float32), (b, h * self.factor, w * self.factor,
                                                      self.channels), method=self.upsample)
    return base + residual.astype(jnp.float32)
