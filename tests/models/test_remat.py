"""model.remat: the same parameters, outputs and gradients, with the blocks rematerialised."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import resnet_gan, unet


def _unet(remat):
  return unet.UNet(image_size=8, channels=1, features=8, multipliers=(1,), blocks=1,
                   attention=(), dropout=0.1, num_classes=3, remat=remat)


def _resnet(remat):
  return (resnet_gan.Generator(8, 1, features=8, latent_dim=4, remat=remat),
          resnet_gan.Discriminator(8, 1, features=8, remat=remat))


@functools.cache
def _unet_inputs():
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1))
  noise, labels = jnp.array([0.1, -0.5]), jnp.array([0, 3])
  params = jax.jit(_unet(False).init)(jax.random.PRNGKey(0), x, noise, labels)["params"]
  return x, noise, labels, params


def _unet_loss_and_grads(remat):
  """(the parameter tree's names and shapes, the loss and gradients at the plain model's
  initial parameters, the gradient's jaxpr)."""
  model = _unet(remat)
  x, noise, labels, params = _unet_inputs()
  tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, noise, labels)

  def loss(p):  # Dropout on, so the rng must reach the rematerialised blocks alike.
    out = model.apply({"params": p}, x, noise, labels, train=True,
                      rngs={"dropout": jax.random.PRNGKey(2)})
    return jnp.mean(out ** 2 + out)
  grad_fn = jax.jit(jax.value_and_grad(loss))
  return tree, grad_fn(params), jax.make_jaxpr(jax.grad(loss))(params)


def _resnet_loss_and_grads(remat):
  generator, discriminator = _resnet(remat)

  @jax.jit  # One program: eager, the inits compiled op by op (178 programs for the test).
  def init():
    z = jax.random.normal(jax.random.PRNGKey(1), (4, 4))
    return (z, generator.init(jax.random.PRNGKey(0), z, train=False),
            discriminator.init(jax.random.PRNGKey(3), jnp.zeros((4, 8, 8, 1)), train=False))
  z, g_vars, d_vars = init()

  def loss(g_params, d_params):
    fake, g_upd = generator.apply({**g_vars, "params": g_params}, z, train=True,
                                  mutable=["batch_stats"])
    logits, d_upd = discriminator.apply({**d_vars, "params": d_params}, fake, train=True,
                                        mutable=["batch_stats"])
    return jnp.mean(logits), (g_upd, d_upd)
  grad_fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
  return ((g_vars, d_vars), grad_fn(g_vars["params"], d_vars["params"]),
          jax.make_jaxpr(lambda g, d: jax.grad(lambda *a: loss(*a)[0], argnums=(0, 1))(g, d))(
              g_vars["params"], d_vars["params"]))


# Slow: the residual GAN, the second model with remat (the U-Net is the first; both wrap
# their blocks through the same `remat.block_maker`, models/remat.py).
@pytest.mark.parametrize("build", [
    _unet_loss_and_grads, pytest.param(_resnet_loss_and_grads, marks=pytest.mark.slow)],
    ids=["unet", "resnet_gan"])
def test_remat_changes_neither_parameters_nor_values_nor_gradients(build):
  (plain_vars, plain, plain_jaxpr), (remat_vars, remat, remat_jaxpr) = build(False), build(True)
  # The same names, shapes (and so initial values): a checkpoint loads either way.
  jax.tree.map(np.testing.assert_array_equal, plain_vars, remat_vars)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), plain,
               remat)
  assert "remat" not in str(plain_jaxpr) and "remat" in str(remat_jaxpr)
