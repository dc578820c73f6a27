"""The VAE family's maths and learning, on tiny shapes without the data pipeline."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import config as config_lib
from jaxgen.families import vae

SMALL = "experiments/vae_fashion_mnist.py:small"


def _state(config):
  return vae.init_state(config, jax.random.PRNGKey(0), vae.image_shape(config))


def test_kl_matches_closed_form_by_monte_carlo():
  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.7]])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.PRNGKey(1), (200_000, 2))
  log_q = jnp.sum(-0.5 * ((z - mean) ** 2 / jnp.exp(logvar) + logvar + math.log(2 * math.pi)), -1)
  log_p = jnp.sum(-0.5 * (z ** 2 + math.log(2 * math.pi)), -1)
  np.testing.assert_allclose(vae._kl_nats(mean, logvar)[0], jnp.mean(log_q - log_p), rtol=1e-2)


def test_bits_per_dim_is_nats_over_dims_ln2():
  assert vae._nats_to_bits_per_dim(784 * math.log(2.0), (28, 28, 1)) == 1.0


def test_a_fixed_batch_is_overfit():
  config = config_lib.load(SMALL, {"model.latent_dim": "8", "model.features": "16"})
  images = (jax.random.uniform(jax.random.PRNGKey(3), (8, 28, 28, 1)) < 0.3).astype(jnp.float32)
  step = jax.jit(lambda s, b: vae.train_step(config, s, b))
  state, first = step(_state(config), {"image": images})
  for _ in range(150):
    state, metrics = step(state, {"image": images})
  assert float(metrics["train/loss"]) < 0.5 * float(first["train/loss"])


def test_iwae_bound_is_above_the_elbo_and_tightens_with_k():
  config = config_lib.load(SMALL, {"model.latent_dim": "8", "model.features": "16"})
  images = (jax.random.uniform(jax.random.PRNGKey(3), (16, 28, 28, 1)) < 0.3).astype(jnp.float32)
  step = jax.jit(lambda s, b: vae.train_step(config, s, b))
  state = _state(config)
  for _ in range(60):
    state, _ = step(state, {"image": images})
  rng = jax.random.PRNGKey(7)
  nelbo = float(jnp.mean(vae.negative_elbo(config, state.params, images, rng)[0]))
  nll = {k: float(jnp.mean(vae.negative_iwae(config, state.params, images, rng, k)))
         for k in (1, 8, 256)}
  # Bounds on −log p(x): IWAE-k ≤ ELBO, decreasing in k; k=1 is the ELBO up to noise.
  assert nll[256] < nll[8] < nelbo
  np.testing.assert_allclose(nll[1], nelbo, rtol=0.05)


def test_iwae_chunks_are_divisors_within_budget():
  assert vae._iwae_chunk(1000, 256 * 784) == 250  # 250·256·784 ≤ 2^26 < 500·256·784
  assert vae._iwae_chunk(7, 1 << 30) == 1


def test_categorical_likelihood_step_and_sample_are_8_bit():
  config = config_lib.load(SMALL, {"model.likelihood": "categorical",
                                   "data.normalize": "integer"})
  images = jax.random.randint(jax.random.PRNGKey(0), (4, 28, 28, 1), 0, 256)
  state, metrics = vae.train_step(config, _state(config), {"image": images})
  # An untrained 256-way softmax is close to uniform: 8 bits per dimension.
  assert 7.0 < float(metrics["train/bits_per_dim"]) < 10.0
  samples = vae.sample(config, state, jax.random.PRNGKey(1), 3)
  assert samples.shape == (3, 28, 28, 1) and samples.dtype == jnp.int32
  assert int(samples.min()) >= 0 and int(samples.max()) <= 255


def test_provenance_states_the_data_convention_and_k():
  config = config_lib.load(SMALL, {})
  described = vae.provenance(config)
  assert described["likelihood"] == "bernoulli" and "binarised" in described["data_convention"]
  assert described["iwae_k"] == config.evaluation.iwae_k
  config.unlock()
  config.model.likelihood, config.data.normalize = "categorical", "integer"
  assert "no dequantisation" in vae.provenance(config)["data_convention"]
