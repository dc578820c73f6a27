"""ConvVAE shapes per likelihood and resolution, residual blocks, reparameterisation, dtype."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.models import likelihoods, vae


def _shapes(model, x):
  """Shapes of (logits, mean, logvar) and of the decoder's output, without computing."""
  def run(x):
    (out, mean, logvar), variables = model.init_with_output(jax.random.PRNGKey(0), x,
                                                            jax.random.PRNGKey(1))
    decoded = model.apply(variables, mean, method=model.decode)
    return out, mean, logvar, decoded
  return jax.tree.map(lambda a: a.shape, jax.eval_shape(run, x))


@pytest.mark.parametrize("image_size", [28, 32, 64])
@pytest.mark.parametrize("likelihood,channels,per_pixel", [
    ("bernoulli", 1, 1), ("categorical", 3, 3 * 256), ("logistic_mixture", 3, 10 * 5),
    ("logistic_mixture", 1, 3 * 5), ("gaussian", 3, 6)])
def test_output_shapes(image_size, likelihood, channels, per_pixel):
  model = vae.ConvVAE(image_size, channels, latent_dim=4, features=8, likelihood=likelihood,
                      num_mixtures=5)
  x = jax.ShapeDtypeStruct((2, image_size, image_size, channels), jnp.float32)
  out, mean, logvar, decoded = _shapes(model, x)
  assert per_pixel == likelihoods.num_params(likelihood, channels, 5)
  assert out == decoded == (2, image_size, image_size, per_pixel)
  assert mean == logvar == (2, 4)


def _param_count(**kwargs):
  model = vae.ConvVAE(**{"image_size": 28, "channels": 1, **kwargs})
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)),
                                             jax.random.PRNGKey(1)))
  return sum(math.prod(p.shape) for p in jax.tree.leaves(shapes))


def test_residual_blocks_add_two_3x3_convolutions_per_block_and_resolution():
  assert _param_count() == 1_700_609  # The default architecture, as before blocks existed.
  # Per block: two 3×3 convolutions with biases, at widths 32 (H/2) and 64 (H/4), in the
  # encoder and the decoder.
  per_block = 2 * (2 * (9 * 32 * 32 + 32) + 2 * (9 * 64 * 64 + 64))
  assert _param_count(blocks=2) == 1_700_609 + 2 * per_block


def test_hidden_sets_the_dense_width_on_both_sides():
  # Encoder: 7·7·64 → hidden → 2·32; decoder: 32 → hidden → 7·7·64 (weights and biases).
  def dense(hidden):
    return (3136 * hidden + hidden + hidden * 64 + 64) + (32 * hidden + hidden + hidden * 3136
                                                           + 3136)
  assert _param_count(hidden=512) == 1_700_609 - dense(256) + dense(512)
  with pytest.raises(UserError, match="hidden=0"):
    _param_count(hidden=0)


def test_residual_vae_keeps_its_shapes():
  model = vae.ConvVAE(32, 3, latent_dim=4, features=8, likelihood="gaussian", blocks=2)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  out, mean, _, _ = _shapes(model, x)
  assert out == (2, 32, 32, 6) and mean == (2, 4)


@functools.cache
def _model_and_params(**kwargs):
  """Initialised once per configuration, jitted (as the applies below): eager, each of the
  model's ops would compile on its own, 60-120 tiny programs per test on 2 cores."""
  model = vae.ConvVAE(28, 1, latent_dim=4, features=8, **kwargs)

  @jax.jit
  def init():
    x = (jax.random.uniform(jax.random.PRNGKey(0), (3, 28, 28, 1)) < 0.5).astype(jnp.float32)
    return model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))["params"], x

  params, x = init()
  return model, params, x


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, x, rng):
  return model.apply({"params": params}, x, rng)


def test_call_is_decode_of_the_reparameterised_latent():
  model, params, x = _model_and_params()
  rng = jax.random.PRNGKey(3)
  logits, mean, logvar = _apply(model, params, x, rng)

  @jax.jit
  def expected(params, x, mean, logvar, rng):
    expected_mean, expected_logvar = model.apply({"params": params}, x, method=model.encode)
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape)
    return expected_mean, expected_logvar, model.apply({"params": params}, z,
                                                       method=model.decode)

  expected_mean, expected_logvar, expected = expected(params, x, mean, logvar, rng)
  np.testing.assert_allclose(mean, expected_mean)
  np.testing.assert_allclose(logvar, expected_logvar)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_the_rng_argument_alone_controls_the_noise():
  model, params, x = _model_and_params()
  first = _apply(model, params, x, jax.random.PRNGKey(4))[0]
  again = _apply(model, params, x, jax.random.PRNGKey(4))[0]
  other = _apply(model, params, x, jax.random.PRNGKey(5))[0]
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, other)


def test_bfloat16_computation_keeps_float32_params():
  model, params, x = _model_and_params(likelihood="categorical", dtype=jnp.bfloat16)
  logits, mean, logvar = _apply(model, params, x, jax.random.PRNGKey(3))
  assert logits.shape == (3, 28, 28, 256)
  assert logits.dtype == mean.dtype == logvar.dtype == jnp.bfloat16
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


@pytest.mark.parametrize("kwargs,message", [(dict(image_size=30), "image_size=30"),
                                            (dict(likelihood="poisson"), "likelihood='poisson'"),
                                            (dict(num_mixtures=0), "num_mixtures=0"),
                                            (dict(blocks=-1), "blocks=-1"),
                                            (dict(pixel_layers=1, pixel_kernel=4),
                                             "pixel_kernel=4"),
                                            (dict(pixel_layers=1, likelihood="categorical"),
                                             "pixel head samples Bernoulli")])
def test_bad_configuration_is_a_user_error(kwargs, message):
  model = vae.ConvVAE(**{"image_size": 28, "channels": 1, **kwargs})
  size = model.image_size
  with pytest.raises(UserError, match=message):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 1)), jax.random.PRNGKey(1))


def test_pixel_head_starts_closed_and_reads_only_earlier_pixels():
  """A fresh head returns the decoder's parameters unchanged (so it can be grown onto a
  trained VAE); a trained one makes pixel (i, j) depend on pixels before it, never on
  (i, j) itself or later ones."""
  model = vae.ConvVAE(28, 1, latent_dim=4, features=8, pixel_layers=2)

  @jax.jit
  def init():
    x = (jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1)) < 0.4).astype(jnp.float32)
    params = model.init(jax.random.PRNGKey(1), x, jax.random.PRNGKey(2))["params"]
    return x, params, model.apply({"params": params}, jnp.ones((2, 4)), method=model.decode)

  x, params, decoded = init()
  refine_jit = jax.jit(lambda p, x, d: model.apply({"params": p}, x, d, method=model.refine))
  refine = lambda p, x: np.asarray(refine_jit(p, x, decoded))
  np.testing.assert_array_equal(refine(params, x), decoded)

  @jax.jit
  def perturb(params):
    keys = iter(jax.random.split(jax.random.PRNGKey(3), len(jax.tree.leaves(params))))
    return jax.tree.map(lambda p: p + 0.3 * jax.random.normal(next(keys), p.shape), params)

  params = perturb(params)
  flipped = jax.jit(lambda x: x.at[:, 10, 5:].set(1.0 - x[:, 10, 5:]).at[:, 11:].set(
      1.0 - x[:, 11:]))(x)
  change = np.abs(refine(params, flipped) - refine(params, x))[..., 0]
  assert change[:, :10].max() == 0.0 and change[:, 10, :6].max() == 0.0
  assert change[:, 10, 6:].max() > 1e-3  # (10, 6) reads (10, 5).
