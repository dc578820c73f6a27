"""The hierarchical VAE: shapes, and its closed-form KL against its own log densities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models import hvae


@functools.cache
def _model_and_vars():
  """Initialised once, jitted (as every apply below): eager, each of the model's ops would
  compile on its own (the file took 33 s that way on 2 cores)."""
  model = hvae.HierarchicalVAE(image_size=28, channels=1, likelihood="logistic_mixture",
                               num_mixtures=1, latent_dim=4,
                               latent_channels=2, features=4)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1))
  return model, jax.jit(model.init)(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2)), x


@functools.partial(jax.jit, static_argnums=0, static_argnames="method")
def _apply(model, *args, method=None):
  return model.apply(*args, method=method)


def test_shapes():
  model, variables, x = _model_and_vars()
  out, kl = _apply(model, variables, x, jax.random.PRNGKey(3))
  assert out.shape == (2, 28, 28, 3) and kl.shape == (2,)
  assert np.all(np.asarray(kl) >= 0.0)
  sampled = jax.jit(lambda v, k: model.apply(v, k, 5, method=model.sample_params))(
      variables, jax.random.PRNGKey(4))
  assert sampled.shape == (5, 28, 28, 3)


def test_closed_form_kl_is_the_mean_log_ratio_of_its_densities():
  """E_q[log q(z|x) - log p(z)] = KL(q ‖ p): the KL used by the ELBO and the log weights used
  by IWAE describe the same distributions."""
  model, variables, x = _model_and_vars()
  keys = jax.random.split(jax.random.PRNGKey(5), 4000)

  @jax.jit
  def log_ratio_and_kl(variables, x, keys):
    encoded = model.apply(variables, x, method=model.encode)
    _, log_ratio = jax.vmap(
        lambda k: model.apply(variables, encoded, k, method=model.log_weight_terms))(keys)
    _, kl = jax.vmap(lambda k: model.apply(variables, x, k))(keys)
    return log_ratio, kl
  log_ratio, kl = log_ratio_and_kl(variables, x, keys)
  # The KL of the lower level depends on the sampled z2, so compare expectations.
  np.testing.assert_allclose(-np.mean(log_ratio, 0), np.mean(kl, 0), rtol=0.05, atol=0.05)


def test_gaussian_kl_matches_the_formula():
  mq, lq = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.3]])
  mp, lp = jnp.array([[0.1, 0.0]]), jnp.array([[-0.5, 0.4]])
  expected = sum(0.5 * (b - a + (np.exp(a) + (m - n) ** 2) / np.exp(b) - 1.0)
                 for m, a, n, b in zip(mq[0], lq[0], mp[0], lp[0]))
  np.testing.assert_allclose(hvae._gaussian_kl(mq, lq, mp, lp), [expected], rtol=1e-5)


def test_one_bottom_up_pass_draws_the_same_sample_as_the_full_pass():
  """IWAE encodes once and reuses the features for every sample: same key, same draw."""
  model, variables, x = _model_and_vars()
  key = jax.random.PRNGKey(6)
  encoded = _apply(model, variables, x, method=model.encode)
  out, _ = _apply(model, variables, encoded, key, method=model.log_weight_terms)
  full, _ = _apply(model, variables, x, key)
  np.testing.assert_allclose(out, full, rtol=1e-6, atol=1e-6)
