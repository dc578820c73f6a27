"""Pieces both GAN architectures share: spectral normalisation, label input, projection head,
example inputs."""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

# Flax keeps momentum·old + (1 − momentum)·batch: 0.9 is PyTorch's momentum=0.1. Shared with
# the GAN family, which can measure the generator's own statistics (families/standing_stats.py).
BATCH_NORM_MOMENTUM = 0.9


def spectral(layer: nn.Module, enabled: bool, train: bool):
  """`layer`, normalised by its weight's largest singular value when `enabled`.

  Flax's SpectralNorm keeps the power-iteration vector in the 'batch_stats' collection (the
  family's model state), advancing it one step per training call, as in Miyato et al.
  """
  if not enabled:
    return layer
  return functools.partial(nn.SpectralNorm(layer), update_stats=train)


def check_labels(labels, num_classes: int, who: str):
  """Labels are required exactly when the model is class-conditional."""
  if num_classes and labels is None:
    raise UserError(f"the {who} is class-conditional (num_classes={num_classes}) and needs "
                    "labels")
  if not num_classes and labels is not None:
    raise UserError(f"the {who} is unconditional (num_classes=0) but got labels: set "
                    "model.num_classes to condition on them")


def example_labels(module: nn.Module, batch: int):
  """Labels [batch] (all class 0) for a class-conditional module; None for an unconditional one."""
  return jnp.zeros((batch,), jnp.int32) if module.num_classes else None


def generator_inputs(module: nn.Module, batch: int):
  """A generator's init arguments: latents [batch, latent_dim], labels, train=False."""
  z = jnp.zeros((batch, module.latent_dim))
  return (z, example_labels(module, batch)), {"train": False}


def discriminator_inputs(module: nn.Module, batch: int):
  """A discriminator's init arguments: images [batch, size, size, channels], labels,
  train=False."""
  x = jnp.zeros((batch, module.image_size, module.image_size, module.channels))
  return (x, example_labels(module, batch)), {"train": False}


def with_label(z: jax.Array, labels, num_classes: int, dtype: Any) -> jax.Array:
  """Latents [b, d] with a learned label embedding of the same size appended: [b, 2d]."""
  if not num_classes:
    return z
  embedding = nn.Embed(num_classes, z.shape[-1], dtype=dtype, name="label_embedding")(labels)
  return jnp.concatenate([z, embedding.astype(z.dtype)], axis=-1)


class ProjectionHead(nn.Module):
  """Features [b, d] (and labels [b]) -> logits [b]: ψ(h) + ⟨embed(y), h⟩ (Miyato & Koyama, 2018).

  The inner product with the class embedding is the projection discriminator's
  conditioning; without classes the head is the plain linear ψ.
  """
  num_classes: int = 0
  spectral_norm: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, h, labels, train: bool):
    logits = spectral(nn.Dense(1, dtype=self.dtype, kernel_init=self.kernel_init),
                      self.spectral_norm, train)(h)[:, 0]
    if self.num_classes:
      embed = spectral(nn.Embed(self.num_classes, h.shape[-1], dtype=self.dtype),
                       self.spectral_norm, train)
      logits = logits + jnp.sum(embed(labels) * h, axis=-1)
    return logits
