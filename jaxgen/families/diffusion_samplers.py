"""Diffusion samplers: each one function of (denoise, noise, σ schedule, rng), k-diffusion's
shared signature, and each one jitted `lax.fori_loop` over its steps.

Every sampler works on x = x₀ + σ·ε (EDM's σ form; a VP model's z_t is √ᾱ·x there, so one
set of samplers serves both formulations). `denoise(x, σ)` is the model's estimate of x₀
[b, H, W, C] at the scalar noise level σ; `sigmas` [steps + 1] falls from σ_max to 0.

  euler      the probability-flow ODE, first order: N NFE (equals DDIM with η = 0)
  heun       EDM's Algorithm 2: 2nd order, an Euler step on the last one, optional churn
             (S_churn > 0 adds noise back before each step): 2N − 1 NFE
  ddim       DDIM with η: η = 0 deterministic, η = 1 DDPM's ancestral sampler: N NFE
  ddpm       DDIM with η = 1 (ancestral): N NFE
  dpmpp_2m   DPM-Solver++(2M): 2nd-order multistep in log σ; 1st order on the first and the
             last step (the lower-order last step keeps ≤ 10-step runs stable): N NFE
"""

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxgen.errors import UserError

SAMPLERS = ("euler", "heun", "ddim", "ddpm", "dpmpp_2m")


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> jax.Array:
  """[steps + 1]: σ_max … σ_min spaced evenly in σ^(1/ρ) (EDM eq. 5), then 0."""
  ramp = jnp.linspace(0.0, 1.0, steps)
  lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
  sigmas = (hi + ramp * (lo - hi)) ** rho
  return jnp.concatenate([sigmas, jnp.zeros((1,))]).astype(jnp.float32)


def num_evaluations(sampler: str, steps: int) -> int:
  """Network evaluations (NFE) of one sample; a guided sample costs each of them twice in
  batch, not in sequence."""
  return 2 * steps - 1 if sampler == "heun" else steps


def check(opts) -> None:
  """One-line errors for config.sampling values no sampler takes."""
  if opts.sampler not in SAMPLERS:
    raise UserError(f"sampling.sampler={opts.sampler!r}: expected one of {', '.join(SAMPLERS)}")
  if not isinstance(opts.steps, int) or opts.steps < 1:
    raise UserError(f"sampling.steps={opts.steps!r}: expected a positive integer")
  if not 0.0 <= opts.eta <= 1.0:
    raise UserError(f"sampling.eta={opts.eta}: expected a value in [0, 1] (0 = DDIM, "
                    "1 = ancestral)")
  if not 0 < opts.sigma_min < opts.sigma_max:
    raise UserError(f"sampling.sigma_min={opts.sigma_min}, sigma_max={opts.sigma_max}: "
                    "expected 0 < sigma_min < sigma_max")
  if opts.churn < 0:
    raise UserError(f"sampling.churn={opts.churn}: expected ≥ 0 (0 = deterministic Heun)")


def sample(opts, denoise, noise, rng) -> jax.Array:
  """x₀ [b, H, W, C] from unit Gaussian `noise` [b, H, W, C] with config.sampling `opts`."""
  sigmas = karras_sigmas(opts.steps, opts.sigma_min, opts.sigma_max, opts.rho)
  x = noise * sigmas[0]
  if opts.sampler == "heun":
    return heun(denoise, x, sigmas, rng, churn=opts.churn)
  if opts.sampler == "euler":
    return ddim(denoise, x, sigmas, rng, eta=0.0)
  if opts.sampler in ("ddim", "ddpm"):
    return ddim(denoise, x, sigmas, rng, eta=1.0 if opts.sampler == "ddpm" else opts.eta)
  return dpmpp_2m(denoise, x, sigmas, rng)


def heun(denoise, x, sigmas, rng, churn: float = 0.0):
  """EDM's stochastic (churn > 0) or deterministic 2nd-order sampler."""
  steps = sigmas.shape[0] - 1
  gamma = min(churn / steps, math.sqrt(2.0) - 1.0)

  def body(i, x):
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    sigma_hat = sigma * (1.0 + gamma)
    if gamma > 0:
      noise = jax.random.normal(jax.random.fold_in(rng, i), x.shape, x.dtype)
      x = x + jnp.sqrt(sigma_hat ** 2 - sigma ** 2) * noise
    d = (x - denoise(x, sigma_hat)) / sigma_hat
    euler = x + (sigma_next - sigma_hat) * d

    def correct(_):
      d_next = (euler - denoise(euler, sigma_next)) / jnp.maximum(sigma_next, 1e-12)
      return x + (sigma_next - sigma_hat) * 0.5 * (d + d_next)

    # The last step reaches σ = 0, where the derivative is undefined: Euler there.
    return lax.cond(sigma_next > 0, correct, lambda _: euler, None)

  return lax.fori_loop(0, steps, body, x)


def ddim(denoise, x, sigmas, rng, eta: float):
  """DDIM(η) in σ form: x₀ estimate, then σ_down of its direction plus σ_up of fresh noise,
  σ_up = η·σ_next·√(1 − σ_next²/σ²) (VP DDIM's variance, rescaled to x = z/√ᾱ)."""

  def body(i, x):
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x0 = denoise(x, sigma)
    eps = (x - x0) / sigma
    sigma_up = jnp.minimum(sigma_next, eta * sigma_next * jnp.sqrt(
        jnp.maximum(1.0 - sigma_next ** 2 / sigma ** 2, 0.0)))
    sigma_down = jnp.sqrt(sigma_next ** 2 - sigma_up ** 2)
    x = x0 + sigma_down * eps
    if eta > 0:
      x = x + sigma_up * jax.random.normal(jax.random.fold_in(rng, i), x.shape, x.dtype)
    return x

  return lax.fori_loop(0, sigmas.shape[0] - 1, body, x)


def dpmpp_2m(denoise, x, sigmas, rng):
  """DPM-Solver++(2M) (Lu et al. 2022; k-diffusion's `sample_dpmpp_2m`)."""
  del rng  # Deterministic.
  steps = sigmas.shape[0] - 1
  log_sigma = lambda s: jnp.log(jnp.maximum(s, 1e-12))

  def body(i, carry):
    x, previous = carry
    sigma, sigma_next = sigmas[i], sigmas[i + 1]
    x0 = denoise(x, sigma)
    h = log_sigma(sigma) - log_sigma(sigma_next)
    h_last = log_sigma(sigmas[jnp.maximum(i - 1, 0)]) - log_sigma(sigma)
    r = jnp.where(i == 0, 1.0, h_last / jnp.where(h > 0, h, 1.0))  # Unused on step 0.
    second = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * previous
    first_order = (i == 0) | (sigma_next == 0)
    d = jnp.where(first_order, x0, second)
    # x_next = (σ_next/σ)·x + (1 − σ_next/σ)·D: exactly D at σ_next = 0.
    ratio = sigma_next / sigma
    return ratio * x + (1.0 - ratio) * d, x0

  return lax.fori_loop(0, steps, body, (x, jnp.zeros_like(x)))[0]
