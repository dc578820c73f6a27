"""DCGAN shapes per resolution, BatchNorm modes, the dtype knob, and custom VJPs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.models import dcgan


@pytest.mark.parametrize("image_size,expected", [(28, (7, 2)), (32, (4, 3)), (64, (4, 4)),
                                                 (56, (7, 3)), (128, (4, 5))])
def test_stages(image_size, expected):
  assert dcgan.stages(image_size) == expected


@pytest.mark.parametrize("image_size", [4, 7, 30, 48])
def test_unsupported_image_size_is_a_user_error(image_size):
  with pytest.raises(UserError, match=f"image_size={image_size}"):
    dcgan.stages(image_size)


@pytest.mark.parametrize("image_size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(image_size, channels):
  generator = dcgan.Generator(image_size, channels, features=8, latent_dim=16)
  discriminator = dcgan.Discriminator(image_size, channels, features=8)
  z = jnp.zeros((2, 16))
  images = jax.eval_shape(lambda: generator.init_with_output(jax.random.PRNGKey(0), z,
                                                             train=True)[0])
  assert images.shape == (2, image_size, image_size, channels)
  logits = jax.eval_shape(
      lambda x: discriminator.init_with_output(jax.random.PRNGKey(0), x, train=True)[0], images)
  assert logits.shape == (2,)


# Jitted, the module static: eager, each op would compile on its own (40-75 tiny programs
# per test on 2 cores); jitted, tests with equal modules and shapes share one program.
@functools.partial(jax.jit, static_argnums=0)
def _init(model, x):
  return model.init(jax.random.PRNGKey(0), x, train=False)


@functools.partial(jax.jit, static_argnames=("model", "train"))
def _apply(model, variables, x, train):
  """(output, batch_stats updates)."""
  return model.apply(variables, x, train=train, mutable=["batch_stats"])


def _stats_changed(before, after):
  return jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                      before, after))


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_batch_stats_update_in_train_mode_only(norm):
  generator = dcgan.Generator(28, 1, features=8, latent_dim=16)
  discriminator = dcgan.Discriminator(28, 1, features=8, norm=norm)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 16))
  g_vars = _init(generator, z)
  images, g_updates = _apply(generator, g_vars, z, train=True)
  assert all(_stats_changed(g_vars["batch_stats"], g_updates["batch_stats"]))
  _, g_eval = _apply(generator, g_vars, z, train=False)
  assert not any(_stats_changed(g_vars["batch_stats"], g_eval["batch_stats"]))

  d_vars = _init(discriminator, images)
  _, d_updates = _apply(discriminator, d_vars, images, train=True)
  if norm == "none":
    assert "batch_stats" not in d_vars and not d_updates
    return
  assert all(_stats_changed(d_vars["batch_stats"], d_updates["batch_stats"]))
  _, d_eval = _apply(discriminator, d_vars, images, train=False)
  assert not any(_stats_changed(d_vars["batch_stats"], d_eval["batch_stats"]))


def test_dcgan_initialisation():
  variables = _init(dcgan.Generator(32, 3, features=16), jnp.zeros((1, 100)))
  kernel = variables["params"]["ConvTranspose_0"]["kernel"]
  scale = variables["params"]["BatchNorm_0"]["scale"]
  kernel, scale = np.asarray(kernel), np.asarray(scale)
  np.testing.assert_allclose(np.std(kernel), 0.02, rtol=0.05)
  np.testing.assert_allclose(np.mean(scale), 1.0, atol=0.01)
  np.testing.assert_allclose(np.std(scale), 0.02, rtol=0.2)


def test_generator_output_is_in_tanh_range():
  generator = dcgan.Generator(28, 1, features=8, latent_dim=16)
  z = 10.0 * jax.random.normal(jax.random.PRNGKey(2), (4, 16))
  images, _ = _apply(generator, _init(generator, z), z, train=False)
  assert float(np.max(np.abs(np.asarray(images)))) <= 1.0


def test_bfloat16_computation_keeps_float32_params():
  generator = dcgan.Generator(28, 1, features=8, latent_dim=16, dtype=jnp.bfloat16)
  discriminator = dcgan.Discriminator(28, 1, features=8, dtype=jnp.bfloat16)
  z = jnp.ones((2, 16))
  g_vars = _init(generator, z)
  images, _ = _apply(generator, g_vars, z, train=False)
  d_vars = _init(discriminator, images)
  logits, _ = _apply(discriminator, d_vars, images, train=False)
  assert images.dtype == jnp.bfloat16 and logits.dtype == jnp.bfloat16
  for variables in (g_vars, d_vars):
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))


def test_unknown_norm_is_a_user_error():
  with pytest.raises(UserError, match="norm='layer'"):
    _init(dcgan.Discriminator(28, 1, norm="layer"), jnp.zeros((1, 28, 28, 1)))


def _small_pair(custom_vjp):
  return (dcgan.Generator(28, 1, features=8, latent_dim=16, custom_vjp=custom_vjp),
          dcgan.Discriminator(28, 1, features=8, custom_vjp=custom_vjp))


def test_custom_vjp_gradients_equal_lax_autodiff():
  z = jax.random.normal(jax.random.PRNGKey(3), (4, 16))
  generator, discriminator = _small_pair(True)
  g_vars = _init(generator, z)
  d_vars = _init(discriminator, jnp.zeros((4, 28, 28, 1)))

  def grads(custom_vjp):
    generator, discriminator = _small_pair(custom_vjp)
    def loss(g_params, d_params):
      images, _ = _apply(generator, {**g_vars, "params": g_params}, z, train=True)
      logits, _ = _apply(discriminator, {**d_vars, "params": d_params}, images, train=True)
      return jnp.mean(jax.nn.softplus(-logits))
    return jax.jit(jax.grad(loss, (0, 1)))(g_vars["params"], d_vars["params"])

  with jax.default_matmul_precision("highest"):
    ours, expected = grads(True), grads(False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               ours, expected)
