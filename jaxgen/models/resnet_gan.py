"""SNGAN-style residual generator and discriminator (Miyato et al., 2018) for 32×32 and up.

Same resolution ladder as DCGAN (`dcgan.stages`: a base of 4 or 7 doubled per stage), but
each stage is a residual block of two 3×3 convolutions at a constant width, with nearest
upsampling in G and average pooling in D: no strided or transposed convolutions at all.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.models import gan_parts, remat as remat_lib
from jaxgen.models.dcgan import stages


def _upsample(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x):
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _batch_norm(train: bool, dtype: Any) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=gan_parts.BATCH_NORM_MOMENTUM,
                      epsilon=1e-5, dtype=dtype)


class _UpBlock(nn.Module):
  """BN-ReLU-up-conv-BN-ReLU-conv, plus up-conv1×1 on the shortcut."""
  features: int
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda k: nn.Conv(self.features, (k, k), dtype=self.dtype)
    h = nn.relu(_batch_norm(train, self.dtype)(x))
    h = conv(3)(_upsample(h))
    h = conv(3)(nn.relu(_batch_norm(train, self.dtype)(h)))
    return h + conv(1)(_upsample(x))


class _DownBlock(nn.Module):
  """(ReLU)-conv-ReLU-conv(-pool), with a conv1×1(-pool) shortcut when the shape changes.

  The first block skips the leading ReLU (its input is the image) and pools its shortcut
  before the 1×1 conv, as SNGAN's "optimized" block does.
  """
  features: int
  downsample: bool
  first: bool
  spectral_norm: bool
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda k: gan_parts.spectral(nn.Conv(self.features, (k, k), dtype=self.dtype),
                                        self.spectral_norm, train)
    h = conv(3)(x if self.first else nn.relu(x))
    h = conv(3)(nn.relu(h))
    if self.downsample:
      h = _downsample(h)
    if self.first:
      shortcut = conv(1)(_downsample(x))
    elif self.downsample or x.shape[-1] != self.features:
      shortcut = conv(1)(x)
      shortcut = _downsample(shortcut) if self.downsample else shortcut
    else:
      shortcut = x
    return h + shortcut


@models.register("resnet_generator", example_inputs=gan_parts.generator_inputs)
class Generator(nn.Module):
  """Latents [batch, latent_dim] -> images [batch, image_size, image_size, channels] in [-1, 1]."""
  image_size: int
  channels: int
  features: int = 128
  latent_dim: int = 128
  num_classes: int = 0
  dtype: Any = jnp.float32
  remat: bool = False  # Recompute each block's activations in the backward pass (models.remat).

  @nn.compact
  def __call__(self, z, labels=None, *, train: bool):
    gan_parts.check_labels(labels, self.num_classes, "generator")
    base, n = stages(self.image_size)
    z = gan_parts.with_label(z, labels, self.num_classes, self.dtype)
    x = nn.Dense(base * base * self.features, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], base, base, self.features)
    make = remat_lib.block_maker(self.remat)
    for _ in range(n):
      x = make(_UpBlock, self.features, self.dtype, static_argnums=(2,))(x, train)
    x = nn.relu(_batch_norm(train, self.dtype)(x))
    return jnp.tanh(nn.Conv(self.channels, (3, 3), dtype=self.dtype)(x))


@models.register("resnet_discriminator", example_inputs=gan_parts.discriminator_inputs)
class Discriminator(nn.Module):
  """Images [batch, image_size, image_size, channels] -> logits [batch].

  One downsampling block per stage, then one at full width without pooling, ReLU, a sum over
  positions and the (projection) head.
  """
  image_size: int
  channels: int
  features: int = 128
  spectral_norm: bool = True
  num_classes: int = 0
  dtype: Any = jnp.float32
  remat: bool = False  # As the generator's.

  @nn.compact
  def __call__(self, x, labels=None, *, train: bool):
    gan_parts.check_labels(labels, self.num_classes, "discriminator")
    _, n = stages(self.image_size)
    x = x.astype(self.dtype)
    make = remat_lib.block_maker(self.remat)
    for stage in range(n + 1):
      x = make(_DownBlock, self.features, downsample=stage < n, first=stage == 0,
               spectral_norm=self.spectral_norm, dtype=self.dtype, static_argnums=(2,))(x, train)
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    return gan_parts.ProjectionHead(self.num_classes, self.spectral_norm, self.dtype)(
        h, labels, train)
