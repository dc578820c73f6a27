"""VQ-VAE (van den Oord et al., 2017): a discrete latent grid with an EMA-updated codebook.

The encoder maps an image to a grid of vectors; each snaps to its nearest codebook entry.
Gradients skip the non-differentiable snap (straight-through: the decoder's gradient at
z_q is handed to z_e), a commitment loss keeps z_e near its code, and the codebook itself
follows exponential moving averages of the vectors assigned to each code (the paper's
appendix; steadier than a codebook loss). The codebook lives in the 'batch_stats'
collection: it is state, not a parameter the optimiser moves.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.models import layers, likelihoods, vae


class VectorQuantizer(nn.Module):
  """z_e [..., dim] -> (z_q with straight-through gradients, indices [...], aux metrics).

  Attributes:
    num_codes: codebook size K.
    decay: EMA decay of the codebook statistics.
    epsilon: Laplace smoothing of the cluster sizes, so an unused code never divides by 0.
  """
  num_codes: int
  decay: float = 0.99
  dtype: Any = jnp.float32
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, z_e, train: bool):
    dim = z_e.shape[-1]
    init = lambda: jax.random.normal(self.make_rng("params"), (self.num_codes, dim))
    codebook = self.variable("batch_stats", "codebook", init)
    # Each code starts as the mean of one pseudo-vector, itself: a code no vector picks then
    # keeps its place (both averages decay alike) instead of being divided by ~0.
    cluster_size = self.variable("batch_stats", "cluster_size",
                                 lambda: jnp.ones((self.num_codes,)))
    embed_sum = self.variable("batch_stats", "embed_sum", lambda: jnp.array(codebook.value))
    flat = z_e.reshape(-1, dim).astype(jnp.float32)
    indices = nearest_codes(flat, codebook.value)
    one_hot = jax.nn.one_hot(indices, self.num_codes, dtype=jnp.float32)
    z_q = codebook.value[indices].reshape(z_e.shape)
    usage = jnp.mean(one_hot, axis=0)
    aux = {"commitment": jnp.mean(jnp.sum((z_e - jax.lax.stop_gradient(z_q)) ** 2, axis=-1)),
           "perplexity": jnp.exp(-jnp.sum(usage * jnp.log(usage + 1e-10))),
           "codes_used": jnp.sum(usage > 0)}
    if train and not self.is_initializing():
      d = self.decay
      cluster_size.value = d * cluster_size.value + (1 - d) * jnp.sum(one_hot, axis=0)
      embed_sum.value = d * embed_sum.value + (1 - d) * one_hot.T @ jax.lax.stop_gradient(flat)
      n = jnp.sum(cluster_size.value)
      smoothed = (cluster_size.value + self.epsilon) / (n + self.num_codes * self.epsilon) * n
      codebook.value = embed_sum.value / smoothed[:, None]
    z_st = z_e + jax.lax.stop_gradient(z_q - z_e)
    return z_st, indices.reshape(z_e.shape[:-1]), aux

  def lookup(self, indices):
    """Codes [...] -> their vectors [..., dim] (for decoding sampled code grids)."""
    return self.get_variable("batch_stats", "codebook")[indices]


def nearest_codes(flat, codebook):
  """Index of the nearest codebook row (squared Euclidean) for each row of flat [n, dim]."""
  distances = (jnp.sum(flat ** 2, -1, keepdims=True) - 2.0 * flat @ codebook.T
               + jnp.sum(codebook ** 2, -1)[None])
  return jnp.argmin(distances, axis=-1)


def _example_inputs(module: nn.Module, batch: int):
  """Init arguments: images [batch, image_size, image_size, channels], train=False."""
  x = jnp.zeros((batch, module.image_size, module.image_size, module.channels))
  return (x,), {"train": False}


@models.register("vqvae", example_inputs=_example_inputs)
class VQVAE(nn.Module):
  """Images [b, H, W, C] in [0, 1] -> likelihood parameters [b, H, W, P] through a grid of
  codes [b, H/4, W/4].

  Two stride-2 convolutions down to the code grid and two transposed ones back up, as in the
  conv VAE, with `code_dim`-wide codes.

  As a VAE (the paper's §3.1): the posterior is one-hot on the nearest codes, the prior
  uniform over the K codes, so the KL is log K per code position, a constant; the ELBO is
  the reconstruction plus (H/4)(W/4)·log K nats, and IWAE-k equals it for every k. Samples
  drawn from that uniform prior are what this bound describes; a learned prior over the
  code grid (a PixelCNN) is what makes VQ-VAE samples good; it is a separate run of the
  autoregressive family (experiments/vqvae_prior_fashion_mnist.py).

  Attributes:
    likelihood, num_mixtures: the pixel likelihood, as `vae.ConvVAE`'s; they set P.
    dtype: the convolutions' computation dtype; parameters, the codebook search and the
      output stay float32.
  """
  image_size: int
  channels: int
  likelihood: str = "logistic_mixture"
  num_mixtures: int = 10
  num_codes: int = 256
  code_dim: int = 16
  features: int = 32
  decay: float = 0.99
  dtype: Any = jnp.float32

  posterior = "deterministic"

  def setup(self):
    vae.check_output("vqvae", self.image_size, self.likelihood, self.num_mixtures)
    out_features = likelihoods.num_params(self.likelihood, self.channels, self.num_mixtures)
    self.down = [layers.Conv(self.features, dtype=self.dtype),
                 layers.Conv(2 * self.features, dtype=self.dtype)]
    self.to_code = nn.Conv(self.code_dim, (1, 1), dtype=self.dtype)
    self.quantizer = VectorQuantizer(self.num_codes, self.decay)
    self.from_code = nn.Conv(2 * self.features, (3, 3), dtype=self.dtype)
    self.up = [layers.ConvTranspose(self.features, dtype=self.dtype),
               layers.ConvTranspose(out_features, dtype=self.dtype)]

  def encode(self, x, train: bool):
    """(z_q [b, s, s, code_dim] with straight-through gradients, codes [b, s, s], aux)."""
    h = x.astype(self.dtype)
    for conv in self.down:
      h = nn.relu(conv(h))
    return self.quantizer(self.to_code(h).astype(jnp.float32), train)

  def decode(self, z_q):
    h = nn.relu(self.from_code(z_q.astype(self.dtype)))
    return self.up[1](nn.relu(self.up[0](h))).astype(jnp.float32)

  def decode_codes(self, codes):
    """Codes [b, s, s] -> likelihood parameters."""
    return self.decode(self.quantizer.lookup(codes))

  def __call__(self, x, train: bool):
    z_q, codes, aux = self.encode(x, train)
    return self.decode(z_q), codes, aux

  def elbo_terms(self, x, rng, train: bool = False):
    """(likelihood parameters, KL log K per code position [b, s·s], aux metrics).

    aux: 'commitment' ‖z_e − sg(z_q)‖² summed over an image's code vectors (so it weighs
    like the per-image reconstruction nats), batch-mean; the batch's code 'perplexity' and
    'codes_used'. train=True moves the EMA codebook (mutable 'batch_stats').
    """
    del rng  # The posterior is deterministic.
    out, codes, aux = self(x, train)
    positions = codes.shape[1] * codes.shape[2]
    kl = jnp.full((x.shape[0], positions), math.log(self.num_codes), jnp.float32)
    return out, kl, {**aux, "commitment": aux["commitment"] * positions}

  def sample_params(self, rng, num: int):
    """Likelihood parameters of `num` code grids drawn from the uniform prior."""
    side = self.image_size // 4
    return self.decode_codes(jax.random.randint(rng, (num, side, side), 0, self.num_codes))

  def reconstruct_params(self, x):
    return self(x, False)[0]
