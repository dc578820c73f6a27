"""A variational bound on −log p(x) of 8-bit images under a diffusion model, in the σ form.

VDM's continuous-time bound (Kingma et al. 2021, eqs. 11–17), written for x = x₀ + σε with
SNR = 1/σ² (a VP model's z = x/√(1 + σ²) has the same SNR, so the bound is the same):

  −log p(x₀) ≤ E[−log p(x₀ | x_σmin)]                    reconstruction: a discretised decoder
             + ∫ ‖x₀ − D(x₀ + σε; σ)‖² / σ² d ln σ       diffusion: from σ_min to σ_max
             + KL(N(x₀, σ_max²) ‖ N(0, σ_max²))          prior: what the samplers start from

The decoder puts each sub-pixel on its 256 grid values with the Gaussian likelihood of
x_σmin (VDM's): a probability mass on the 8-bit data, so no dequantisation or Jacobian is
needed and the result is a true bound in bits/dim, comparable with the autoregressive and VAE
families' (lower is better). The diffusion integral is one Monte Carlo draw of ln σ ~ U(ln
σ_min, ln σ_max) per image, spread evenly over each batch (VDM's low-discrepancy sampler);
its mean over a test split of thousands of images is precise, a single image's is not.
σ_min and σ_max are config.sampling's, the range the samplers use.

The bound is only as tight as the denoiser is good at every σ: a model trained with EDM's
log-normal σ rarely sees σ ≪ 0.01, where snapping onto the 8-bit grid is learned, and pays for
it here. VDM trains on this bound itself (a uniform density over ln SNR) and so is tighter.
"""

import math

import jax
import jax.numpy as jnp

from jaxgen import images
from jaxgen.models import likelihoods

DESCRIPTION = ("VDM continuous-time variational bound (Kingma et al. 2021) in bits/dim on the "
               "8-bit images: discretised Gaussian decoder at sampling.sigma_min, diffusion "
               "term over ln σ up to sampling.sigma_max (one draw of ln σ ~ U per image, "
               "spread evenly over each batch), Gaussian prior N(0, sigma_max²); EMA weights; "
               "conditional models see the true labels (at most log2(classes)/dims bits/dim "
               "below the unconditional)")


def pixel_grid(data) -> tuple[jax.Array, float]:
  """(the 256 values [256] a sub-pixel can take in the model's range, their spacing's
  reciprocal): value k = (k + centre) / scale + offset."""
  scale, offset = images.scale_offset(data.normalize, data.dequantize)
  # Dequantised evaluation images sit at the centres of their bins (input_pipeline).
  centre = 0.5 if data.dequantize else 0.0
  return (jnp.arange(256, dtype=jnp.float32) + centre) / scale + offset, scale


def reconstruction_nats(data, x0, noisy, sigma_min: float) -> jax.Array:
  """−log p(x₀ | x_σmin) [b] summed over sub-pixels: each sub-pixel a softmax over the 256
  grid values of the Gaussian log-likelihood of its noisy value."""
  grid, scale = pixel_grid(data)
  index = jnp.round((x0 - grid[0]) * scale).astype(jnp.int32)
  logits = -0.5 * ((noisy[..., None] - grid) / sigma_min) ** 2
  log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), index[..., None], axis=-1)
  return -jnp.sum(log_p, axis=tuple(range(1, log_p.ndim)))


def bound_terms(config, denoise, x0, rng, sigma_min: float, sigma_max: float) -> dict:
  """Per-image bound [b] in bits/dim and its three parts. `denoise(x, σ [b])` is D."""
  recon_rng, sigma_rng, noise_rng = jax.random.split(rng, 3)
  b = x0.shape[0]
  per_image = lambda v: v[:, None, None, None]
  noisy = x0 + sigma_min * jax.random.normal(recon_rng, x0.shape)
  recon = reconstruction_nats(config.data, x0, noisy, sigma_min)

  log_range = math.log(sigma_max) - math.log(sigma_min)
  # VDM's low-discrepancy draw: one uniform offset, the batch's ln σ evenly spread from it.
  # Each image's σ is still U(ln σ_min, ln σ_max), so the mean is unbiased, with far less
  # variance than independent draws (the integrand spans orders of magnitude over ln σ).
  u = jnp.mod(jax.random.uniform(sigma_rng) + jnp.arange(b) / b, 1.0)
  sigma = jnp.exp(math.log(sigma_min) + log_range * u)
  x = x0 + per_image(sigma) * jax.random.normal(noise_rng, x0.shape)
  error = jnp.sum((denoise(x, sigma) - x0) ** 2, axis=(1, 2, 3))
  diffusion = log_range * error / sigma ** 2

  prior = jnp.sum(x0 ** 2, axis=(1, 2, 3)) / (2.0 * sigma_max ** 2)
  bpd = lambda nats: likelihoods.bits_per_dim(nats, x0.shape[1:])
  return {"bound_bits_per_dim": bpd(recon + diffusion + prior),
          "bound_reconstruction_bits_per_dim": bpd(recon),
          "bound_diffusion_bits_per_dim": bpd(diffusion),
          "bound_prior_bits_per_dim": bpd(prior)}
