"""DCGAN (Radford et al., 2016): a transposed-convolution generator and a conv discriminator.

Both networks double or halve the resolution once per stage, starting from a base of 7
(28 = 7·2²) or 4 (32 = 4·2³, 64 = 4·2⁴, ...). Layers followed by BatchNorm carry no bias:
BatchNorm's mean subtraction would cancel it.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import gan_parts, layers

# DCGAN initialisation: weights N(0, 0.02), BatchNorm scales N(1, 0.02).
_KERNEL_INIT = nn.initializers.normal(0.02)
_BASES = (4, 7)
_NORMS = ("batch", "none")


def _scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def stages(image_size: int) -> tuple[int, int]:
  """(base resolution, number of factor-2 stages) with image_size = base * 2**stages."""
  for base in _BASES:
    n = (image_size // base).bit_length() - 1
    if n >= 1 and base * 2 ** n == image_size:
      return base, n
  raise UserError(f"image_size={image_size}: expected 4 or 7 times a power of two "
                  "(28, 32, 64, 128, ...); resize the data or pick another size")


def _batch_norm(train: bool, dtype: Any) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=gan_parts.BATCH_NORM_MOMENTUM,
                      epsilon=1e-5, dtype=dtype,
                      scale_init=_scale_init)


@models.register("dcgan_generator", example_inputs=gan_parts.generator_inputs)
class Generator(nn.Module):
  """Latents [batch, latent_dim] -> images [batch, image_size, image_size, channels] in [-1, 1].

  Dense to a base x base grid of features·2^(stages-1) channels, then per stage a 4x4
  stride-2 transposed convolution halving the width; BatchNorm + ReLU after every layer but
  the last, which outputs `channels` through tanh.

  Attributes:
    num_classes: > 0 makes it class-conditional: a label embedding is appended to z.
    dtype: computation dtype; parameters stay float32.
    custom_vjp: see `layers.ConvTranspose`.
  """
  image_size: int
  channels: int
  features: int = 64
  latent_dim: int = 100
  num_classes: int = 0
  dtype: Any = jnp.float32
  custom_vjp: bool = True

  @nn.compact
  def __call__(self, z, labels=None, *, train: bool):
    gan_parts.check_labels(labels, self.num_classes, "generator")
    base, n = stages(self.image_size)
    width = self.features * 2 ** (n - 1)
    z = gan_parts.with_label(z, labels, self.num_classes, self.dtype)
    x = nn.Dense(base * base * width, use_bias=False, dtype=self.dtype,
                 kernel_init=_KERNEL_INIT)(z)
    # BatchNorm per channel after the reshape, as PyTorch's DCGAN does after its first layer.
    x = x.reshape(z.shape[0], base, base, width)
    x = nn.relu(_batch_norm(train, self.dtype)(x))
    for stage in range(n):
      last = stage == n - 1
      width = self.channels if last else width // 2
      x = layers.ConvTranspose(width, use_bias=last, dtype=self.dtype, kernel_init=_KERNEL_INIT,
                               custom_vjp=self.custom_vjp)(x)
      x = jnp.tanh(x) if last else nn.relu(_batch_norm(train, self.dtype)(x))
    return x


@models.register("dcgan_discriminator", example_inputs=gan_parts.discriminator_inputs)
class Discriminator(nn.Module):
  """Images [batch, image_size, image_size, channels] -> real-vs-fake logits [batch].

  Per stage a 4x4 stride-2 convolution (widths features, 2·features, ...), BatchNorm except
  after the first (none at all with norm='none'), LeakyReLU(0.2); then a linear head, with
  a class projection when conditional (`gan_parts.ProjectionHead`).

  Attributes:
    norm: 'batch' or 'none'.
    spectral_norm: divide every weight by its largest singular value (SNGAN).
    num_classes: > 0 makes it a projection discriminator that needs labels.
    dtype: computation dtype; parameters stay float32.
    custom_vjp: see `layers.Conv`.
  """
  image_size: int
  channels: int
  features: int = 64
  norm: str = "batch"
  spectral_norm: bool = False
  num_classes: int = 0
  dtype: Any = jnp.float32
  custom_vjp: bool = True

  @nn.compact
  def __call__(self, x, labels=None, *, train: bool):
    if self.norm not in _NORMS:
      raise UserError(f"discriminator norm={self.norm!r}: expected one of {', '.join(_NORMS)}")
    gan_parts.check_labels(labels, self.num_classes, "discriminator")
    _, n = stages(self.image_size)
    x = x.astype(self.dtype)
    for stage in range(n):
      normalize = self.norm == "batch" and stage > 0
      conv = layers.Conv(self.features * 2 ** stage, use_bias=not normalize, dtype=self.dtype,
                         kernel_init=_KERNEL_INIT, custom_vjp=self.custom_vjp)
      x = gan_parts.spectral(conv, self.spectral_norm, train)(x)
      if normalize:
        x = _batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    return gan_parts.ProjectionHead(self.num_classes, self.spectral_norm, self.dtype,
                                    _KERNEL_INIT)(x.reshape(x.shape[0], -1), labels, train)
