"""DCGAN shapes per resolution, BatchNorm modes, the dtype knob, and the model registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import models
from jaxgen.errors import UserError
from jaxgen.models import dcgan

# Parameter counts at each registered model's default width, on Fashion-MNIST-shaped images.
# For 64x64x3 the DCGAN paper's networks have 3,576,704 (G) and 2,765,568 (D) parameters;
# ours add the biases of the layers without BatchNorm (G: 3, D: 64 + 1).
GOLDEN_PARAM_COUNTS = {
    "dcgan_generator": (dict(image_size=28, channels=1), 759_681),
    "dcgan_discriminator": (dict(image_size=28, channels=1), 138_689),
    "conv_vae": (dict(image_size=28, channels=1), 1_700_609),
    # Counted by hand: dense 809,088 + 2 up-blocks of 312,192 + BN 256 + conv 1,153.
    "resnet_generator": (dict(image_size=28, channels=1), 1_434_881),
    # First block 149,120 + a down-block 311,680 + an identity block 295,168 + head 129.
    "resnet_discriminator": (dict(image_size=28, channels=1), 756_097),
    # Fully convolutional (no image_size); 256-way output per sub-pixel. Masked-out kernel
    # taps are stored, so they count.
    # Counted by hand: encoder convs 544 + 32,832, dense 803,072, q(z2) 16,448, top-down
    # 103,488, p(z1|z2) 9,232, q(z1|·) 18,448, merge 41,536, decoder 32,800 + 513.
    "hvae": (dict(image_size=28, channels=1), 1_058_913),
    # 544 + 32,832 down, 1,040 to codes, 9,280 from codes, 32,800 + 15,390 up (a 10-logistic
    # mixture, 30 per pixel); the 256 x 16 codebook is state (batch_stats), not parameters.
    "vqvae": (dict(image_size=28, channels=1), 91_886),
    "pixelcnn": (dict(channels=1), 479_744),
    "gated_pixelcnn": (dict(channels=1), 1_104_320),
    "row_lstm": (dict(channels=1), 729_344),
}
_AUTOREGRESSIVE = ("pixelcnn", "gated_pixelcnn", "row_lstm")
DCGAN_64_PARAM_COUNTS = {"dcgan_generator": 3_576_707, "dcgan_discriminator": 2_765_633}


def _example_inputs(name, kwargs):
  """Positional and keyword call arguments for a batch of 2."""
  if name in _AUTOREGRESSIVE:
    return (jnp.zeros((2, 28, 28, kwargs["channels"])),), {}
  size, channels = kwargs["image_size"], kwargs["channels"]
  if name.endswith("_generator"):
    return (jnp.zeros((2, models.get(name)(**kwargs).latent_dim)),), {"train": False}
  if name.endswith("_discriminator") or name == "vqvae":
    return (jnp.zeros((2, size, size, channels)),), {"train": False}
  return (jnp.zeros((2, size, size, channels)), jax.random.PRNGKey(0)), {}


def _param_count(name, kwargs):
  args, call_kwargs = _example_inputs(name, kwargs)
  model = models.get(name)(**kwargs)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, **call_kwargs))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))


def test_every_registered_model_has_a_golden_param_count():
  assert set(models.names()) == set(GOLDEN_PARAM_COUNTS)


@pytest.mark.parametrize("name", sorted(GOLDEN_PARAM_COUNTS))
def test_param_count_matches_golden(name):
  kwargs, expected = GOLDEN_PARAM_COUNTS[name]
  assert _param_count(name, kwargs) == expected


@pytest.mark.parametrize("name", sorted(DCGAN_64_PARAM_COUNTS))
def test_dcgan_64_param_count(name):
  assert _param_count(name, dict(image_size=64, channels=3)) == DCGAN_64_PARAM_COUNTS[name]


def test_unknown_model_names_the_known_ones():
  with pytest.raises(UserError, match="'dcgan'.*conv_vae, dcgan_discriminator, dcgan_generator, "
                     "gated_pixelcnn, hvae, pixelcnn, resnet_discriminator, resnet_generator, "
                     "row_lstm, vqvae"):
    models.get("dcgan")


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


def _init(model, x):
  return model.init(jax.random.PRNGKey(0), x, train=False)


def _apply(model, variables, x, train):
  """(output, batch_stats updates)."""
  return model.apply(variables, x, train=train, mutable=["batch_stats"])


def _stats_changed(before, after):
  return jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, after))


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
  np.testing.assert_allclose(jnp.std(kernel), 0.02, rtol=0.05)
  np.testing.assert_allclose(jnp.mean(scale), 1.0, atol=0.01)
  np.testing.assert_allclose(jnp.std(scale), 0.02, rtol=0.2)


def test_generator_output_is_in_tanh_range():
  generator = dcgan.Generator(28, 1, features=8, latent_dim=16)
  z = 10.0 * jax.random.normal(jax.random.PRNGKey(2), (4, 16))
  images = generator.apply(_init(generator, z), z, train=False)
  assert float(jnp.max(jnp.abs(images))) <= 1.0


def test_bfloat16_computation_keeps_float32_params():
  generator = dcgan.Generator(28, 1, features=8, latent_dim=16, dtype=jnp.bfloat16)
  discriminator = dcgan.Discriminator(28, 1, features=8, dtype=jnp.bfloat16)
  z = jnp.ones((2, 16))
  g_vars = _init(generator, z)
  images = generator.apply(g_vars, z, train=False)
  d_vars = _init(discriminator, images)
  logits = discriminator.apply(d_vars, images, train=False)
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
