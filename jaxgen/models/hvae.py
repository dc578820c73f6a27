"""A two-level hierarchical VAE with a top-down inference path (Sønderby et al., 2016 style).

Generative model: z2 ~ N(0, I) [b, latent2] -> z1 ~ p(z1 | z2) = N(μ_p, σ_p²) [b, s, s, c1]
-> x ~ p(x | z1). Inference shares the top-down path: q(z2 | x) from the bottom-up features,
then q(z1 | x, z2) from the bottom-up features at z1's resolution combined with the
top-down features of z2. Sharing the path is what keeps the lower level from collapsing
into the prior, the usual failure of a bottom-up-only ladder.

z1 is a spatial grid (s = image_size / 4) and z2 a vector, both Gaussian, so every KL term
is closed-form for a single sample; IWAE needs the log densities themselves
(`encode` once per image, then `log_weight_terms` once per sample).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.models import layers, likelihoods, vae

_HIDDEN = 256


def _gaussian_log_prob(x, mean, logvar):
  """log N(x; mean, exp(logvar)) summed over all but the batch axis: [b]."""
  per_dim = -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * jnp.exp(-logvar))
  return jnp.sum(per_dim.reshape(x.shape[0], -1), axis=-1)


def _gaussian_kl(mean_q, logvar_q, mean_p, logvar_p):
  """KL(N(mean_q, var_q) ‖ N(mean_p, var_p)) summed over all but the batch axis: [b]."""
  per_dim = 0.5 * (logvar_p - logvar_q + (jnp.exp(logvar_q) + (mean_q - mean_p) ** 2)
                   * jnp.exp(-logvar_p) - 1.0)
  return jnp.sum(per_dim.reshape(mean_q.shape[0], -1), axis=-1)


@models.register("hvae", example_inputs=vae.example_inputs)
class HierarchicalVAE(nn.Module):
  """Images [b, H, W, C] in [0, 1] -> per-pixel likelihood parameters [b, H, W, P].

  Attributes:
    image_size: a multiple of 4.
    likelihood, num_mixtures: the pixel likelihood, as `vae.ConvVAE`'s; they set P.
    latent_dim: size of the top latent z2.
    latent_channels: channels of the spatial lower latent z1 [b, H/4, W/4, latent_channels].
  """
  image_size: int
  channels: int
  likelihood: str = "bernoulli"
  num_mixtures: int = 10
  latent_dim: int = 32
  latent_channels: int = 8
  features: int = 32
  dtype: Any = jnp.float32

  # Two Gaussian levels: IWAE draws whole joint samples through `log_weight_terms`.
  posterior = "hierarchical"

  def setup(self):
    vae.check_output("hvae", self.image_size, self.likelihood, self.num_mixtures)
    out_features = likelihoods.num_params(self.likelihood, self.channels, self.num_mixtures)
    conv = lambda w: layers.Conv(w, dtype=self.dtype)
    side = self.image_size // 4
    self.up = [conv(self.features), conv(2 * self.features)]         # x -> [b, s, s, 2f]
    self.q_top = nn.Dense(2 * self.latent_dim, dtype=self.dtype)     # -> q(z2 | x)
    self.up_dense = nn.Dense(_HIDDEN, dtype=self.dtype)
    self.top_down = nn.Dense(side * side * 2 * self.features, dtype=self.dtype)  # z2 -> d1
    self.p_low = nn.Conv(2 * self.latent_channels, (3, 3), dtype=self.dtype)  # d1 -> p(z1|z2)
    self.q_low = nn.Conv(2 * self.latent_channels, (3, 3), dtype=self.dtype)  # [h1,d1] -> q
    self.merge = nn.Conv(2 * self.features, (3, 3), dtype=self.dtype)  # [z1, d1] -> decoder
    self.down = [layers.ConvTranspose(self.features, dtype=self.dtype),
                 layers.ConvTranspose(out_features, dtype=self.dtype)]

  def encode(self, x):
    """The bottom-up pass: (features h1 [b, s, s, 2f], mean2, logvar2 [b, latent_dim]).

    It depends on x alone, so importance sampling runs it once per image and only the
    top-down pass (`log_weight_terms`) once per sample.
    """
    h = x.astype(self.dtype)
    for conv in self.up:
      h = nn.relu(conv(h))
    top = nn.relu(self.up_dense(h.reshape(h.shape[0], -1)))
    mean, logvar = jnp.split(self.q_top(top), 2, axis=-1)
    return h, mean, logvar

  def _prior_low(self, z2):
    side = self.image_size // 4
    d1 = nn.relu(self.top_down(z2)).reshape(z2.shape[0], side, side, 2 * self.features)
    mean, logvar = jnp.split(self.p_low(d1), 2, axis=-1)
    return d1, mean, logvar

  def decode(self, z1, d1):
    """Lower latent z1 [b, s, s, latent_channels] and top-down features d1 -> parameters."""
    h = nn.relu(self.merge(jnp.concatenate([z1.astype(self.dtype), d1], axis=-1)))
    h = nn.relu(self.down[0](h))
    return self.down[1](h)

  def _posterior(self, x, rng, deterministic: bool = False, encoded=None):
    """One joint sample from q(z2, z1 | x), with every density's parameters; `encoded` is
    x's `encode` output when the caller already has it (x is then unused)."""
    rng2, rng1 = (None, None) if deterministic else jax.random.split(rng)
    h1, mean2, logvar2 = self.encode(x) if encoded is None else encoded
    z2 = mean2 if deterministic else (
        mean2 + jnp.exp(0.5 * logvar2) * jax.random.normal(rng2, mean2.shape, mean2.dtype))
    d1, prior_mean1, prior_logvar1 = self._prior_low(z2)
    mean1, logvar1 = jnp.split(self.q_low(jnp.concatenate([h1, d1], axis=-1)), 2, axis=-1)
    z1 = mean1 if deterministic else (
        mean1 + jnp.exp(0.5 * logvar1) * jax.random.normal(rng1, mean1.shape, mean1.dtype))
    f32 = lambda *xs: [v.astype(jnp.float32) for v in xs]
    return (f32(z2, mean2, logvar2), f32(z1, mean1, logvar1, prior_mean1, prior_logvar1),
            self.decode(z1, d1))

  def __call__(self, x, rng):
    """(likelihood parameters, KL [b]) with both KL terms in closed form at the sample."""
    (z2, m2, lv2), (z1, m1, lv1, pm1, plv1), out = self._posterior(x, rng)
    kl_top = _gaussian_kl(m2, lv2, jnp.zeros_like(m2), jnp.zeros_like(lv2))
    kl_low = _gaussian_kl(m1, lv1, pm1, plv1)
    return out, kl_top + kl_low

  def elbo_terms(self, x, rng, train: bool = False):
    """(likelihood parameters, KL per latent dimension [b, latent_dim + s·s·latent_channels],
    aux metrics {}): both levels' closed-form KLs at one sample, z2's then z1's."""
    del train  # No state to update.
    (z2, m2, lv2), (z1, m1, lv1, pm1, plv1), out = self._posterior(x, rng)
    kl_top = 0.5 * (jnp.exp(lv2) + m2 ** 2 - 1.0 - lv2)
    kl_low = 0.5 * (plv1 - lv1 + (jnp.exp(lv1) + (m1 - pm1) ** 2) * jnp.exp(-plv1) - 1.0)
    return out, jnp.concatenate([kl_top, kl_low.reshape(x.shape[0], -1)], axis=-1), {}

  def reconstruct_params(self, x):
    """Likelihood parameters decoded from the posterior means (z2's, then z1's given it)."""
    return self._posterior(x, None, deterministic=True)[2]

  def log_weight_terms(self, encoded, rng):
    """(likelihood parameters, log p(z1, z2) - log q(z1, z2 | x) [b]) for one joint sample
    given x's `encode` output: the importance weight without its log p(x | z1) term."""
    (z2, m2, lv2), (z1, m1, lv1, pm1, plv1), out = self._posterior(None, rng, encoded=encoded)
    log_p = (_gaussian_log_prob(z2, jnp.zeros_like(z2), jnp.zeros_like(z2))
             + _gaussian_log_prob(z1, pm1, plv1))
    log_q = _gaussian_log_prob(z2, m2, lv2) + _gaussian_log_prob(z1, m1, lv1)
    return out, log_p - log_q

  def sample_params(self, rng, num: int):
    """Likelihood parameters of `num` draws from the prior: z2, then z1 | z2."""
    rng2, rng1 = jax.random.split(rng)
    z2 = jax.random.normal(rng2, (num, self.latent_dim))
    d1, mean1, logvar1 = self._prior_low(z2)
    z1 = mean1 + jnp.exp(0.5 * logvar1) * jax.random.normal(rng1, mean1.shape, mean1.dtype)
    return self.decode(z1, d1)
