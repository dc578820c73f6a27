"""A small convolutional VAE with a Bernoulli or 256-way categorical pixel likelihood."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import layers

_LIKELIHOODS = ("bernoulli", "categorical")
_HIDDEN = 256


class Encoder(nn.Module):
  """Images [batch, height, width, channels] -> (mean, log-variance), each [batch, latent_dim]."""
  latent_dim: int
  features: int
  dtype: Any
  custom_vjp: bool

  @nn.compact
  def __call__(self, x):
    x = x.astype(self.dtype)
    for width in (self.features, 2 * self.features):
      x = nn.relu(layers.Conv(width, dtype=self.dtype, custom_vjp=self.custom_vjp)(x))
    x = nn.relu(nn.Dense(_HIDDEN, dtype=self.dtype)(x.reshape(x.shape[0], -1)))
    mean, logvar = jnp.split(nn.Dense(2 * self.latent_dim, dtype=self.dtype)(x), 2, axis=-1)
    return mean, logvar


class Decoder(nn.Module):
  """Latents [batch, latent_dim] -> logits [batch, height, width, out_features]."""
  image_size: int
  out_features: int
  features: int
  dtype: Any
  custom_vjp: bool

  @nn.compact
  def __call__(self, z):
    side = self.image_size // 4
    x = nn.relu(nn.Dense(_HIDDEN, dtype=self.dtype)(z))
    x = nn.relu(nn.Dense(side * side * 2 * self.features, dtype=self.dtype)(x))
    x = x.reshape(z.shape[0], side, side, 2 * self.features)
    x = nn.relu(layers.ConvTranspose(self.features, dtype=self.dtype,
                                     custom_vjp=self.custom_vjp)(x))
    return layers.ConvTranspose(self.out_features, dtype=self.dtype,
                                custom_vjp=self.custom_vjp)(x)


@models.register("conv_vae")
class ConvVAE(nn.Module):
  """Encoder, reparameterised Gaussian latent, decoder to per-pixel logits.

  Inputs x are [batch, image_size, image_size, channels] floats: in {0, 1} for the
  'bernoulli' likelihood (binarised images), x_int / 255 in [0, 1] for 'categorical'.
  Logits are [batch, H, W, channels] (Bernoulli) or [batch, H, W, channels, 256]
  (categorical, one 256-way distribution per sub-pixel).

  Attributes:
    image_size: a multiple of 4 (two stride-2 stages).
    dtype: computation dtype; parameters stay float32.
    custom_vjp: see `layers.Conv` and `layers.ConvTranspose`.
  """
  image_size: int
  channels: int
  latent_dim: int = 32
  features: int = 32
  likelihood: str = "bernoulli"
  dtype: Any = jnp.float32
  custom_vjp: bool = True

  def setup(self):
    if self.image_size % 4:
      raise UserError(f"conv_vae image_size={self.image_size}: expected a multiple of 4 "
                      "(28, 32, 64, ...)")
    if self.likelihood not in _LIKELIHOODS:
      raise UserError(f"conv_vae likelihood={self.likelihood!r}: expected one of "
                      f"{', '.join(_LIKELIHOODS)}")
    self.encoder = Encoder(self.latent_dim, self.features, self.dtype, self.custom_vjp)
    out = self.channels * (256 if self.likelihood == "categorical" else 1)
    self.decoder = Decoder(self.image_size, out, self.features, self.dtype, self.custom_vjp)

  def encode(self, x):
    """x [batch, H, W, channels] -> (mean, logvar), each [batch, latent_dim]."""
    return self.encoder(x)

  def decode(self, z):
    """z [batch, latent_dim] -> logits (shape per the likelihood, see the class docstring)."""
    logits = self.decoder(z)
    if self.likelihood == "categorical":
      return logits.reshape(*logits.shape[:-1], self.channels, 256)
    return logits

  def __call__(self, x, rng):
    """(logits, mean, logvar) with z = mean + exp(logvar / 2)·eps, eps ~ N(0, I) from rng.

    The rng is an argument rather than a Flax rng stream so the caller owns the randomness.
    """
    mean, logvar = self.encode(x)
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    return self.decode(mean + jnp.exp(0.5 * logvar) * eps), mean, logvar
