"""Spectral norm, the projection head, label checks and the residual GAN's shapes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.models import dcgan, gan_parts, resnet_gan


# Jitted, the module static (as the applies below): eager, each op would compile on its own
# (30-70 tiny programs per test on 2 cores); equal modules and shapes share one program.
@functools.partial(jax.jit, static_argnums=0)
def _init(module, rng, *inputs):
  return module.init(rng, *inputs, train=False)


def test_spectral_norm_estimate_matches_the_largest_singular_value():
  """After enough power-iteration steps (one per training call), σ equals svd's σ_max of the
  kernel flattened to [kh·kw·in, out], and the normalised layer's σ_max is 1."""
  d = dcgan.Discriminator(28, 1, features=8, norm="none", spectral_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = _init(d, jax.random.PRNGKey(1), x)
  stats = variables["batch_stats"]

  @jax.jit
  def power_step(stats):
    _, updates = d.apply({"params": variables["params"], "batch_stats": stats}, x, train=True,
                         mutable=["batch_stats"])
    return updates["batch_stats"]

  for _ in range(100):
    stats = power_step(stats)
  spectral_stats = jax.tree_util.tree_flatten_with_path(stats)[0]
  sigmas = {jax.tree_util.keystr(path): v for path, v in spectral_stats if "sigma" in str(path)}
  assert len(sigmas) == 3  # Two convolutions and the head's Dense.
  kernel = np.asarray(variables["params"]["Conv_1"]["kernel"])
  expected = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
  (sigma,) = [v for k, v in sigmas.items() if "Conv_1" in k]
  np.testing.assert_allclose(sigma, expected, rtol=1e-3)


def test_spectral_norm_leaves_the_stats_alone_at_inference():
  d = dcgan.Discriminator(28, 1, features=8, norm="none", spectral_norm=True)
  x = jnp.ones((2, 28, 28, 1))
  variables = _init(d, jax.random.PRNGKey(1), x)
  _, updates = jax.jit(lambda v, x: d.apply(v, x, train=False, mutable=["batch_stats"]))(
      variables, x)
  jax.tree.map(np.testing.assert_array_equal, updates["batch_stats"], variables["batch_stats"])


def test_projection_head_adds_the_class_embedding_inner_product():
  head = gan_parts.ProjectionHead(num_classes=3)
  h = jax.random.normal(jax.random.PRNGKey(0), (4, 5))
  labels = jnp.array([0, 1, 2, 1])
  variables = _init(head, jax.random.PRNGKey(1), h, labels)

  @jax.jit
  def expected(params, h, labels):
    return (h @ params["Dense_0"]["kernel"])[:, 0] + params["Dense_0"]["bias"][0] + jnp.sum(
        params["Embed_0"]["embedding"][labels] * h, axis=-1)

  out = jax.jit(lambda v, h, labels: head.apply(v, h, labels, train=False))(variables, h, labels)
  np.testing.assert_allclose(out, expected(variables["params"], h, labels), rtol=1e-5)


@pytest.mark.parametrize("model", [dcgan.Generator(28, 1, features=8, latent_dim=4),
                                   resnet_gan.Generator(28, 1, features=8, latent_dim=4)])
def test_conditional_generators_use_the_label_and_require_one(model):
  z = jnp.ones((2, 4))
  conditional = model.clone(num_classes=10)
  variables = _init(conditional, jax.random.PRNGKey(0), z, jnp.array([0, 0]))
  apply = jax.jit(lambda v, z, labels: conditional.apply(v, z, labels, train=False))
  a = np.asarray(apply(variables, z, jnp.array([3, 3])))
  b = np.asarray(apply(variables, z, jnp.array([3, 5])))
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.allclose(a[1], b[1])  # Same z, another class: another image.
  with pytest.raises(UserError, match="class-conditional"):
    conditional.init(jax.random.PRNGKey(0), z, train=False)
  with pytest.raises(UserError, match="unconditional"):
    model.init(jax.random.PRNGKey(0), z, jnp.array([0, 0]), train=False)


@pytest.mark.parametrize("image_size,channels", [(28, 1), (32, 3), (64, 3)])
def test_resnet_gan_shapes(image_size, channels):
  g = resnet_gan.Generator(image_size, channels, features=8, latent_dim=4, num_classes=10)
  d = resnet_gan.Discriminator(image_size, channels, features=8, num_classes=10)
  z, labels = jnp.zeros((2, 4)), jnp.array([1, 2])
  images = jax.eval_shape(lambda: g.init_with_output(jax.random.PRNGKey(0), z, labels,
                                                     train=True)[0])
  assert images.shape == (2, image_size, image_size, channels)
  logits = jax.eval_shape(lambda x: d.init_with_output(jax.random.PRNGKey(0), x, labels,
                                                       train=True)[0], images)
  assert logits.shape == (2,)
