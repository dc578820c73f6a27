"""Gradient accumulation: k micro-batches in one jitted step make the whole batch's update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import accumulate, config as config_lib, families, images, sharding, train
from jaxgen import train_state
from jaxgen.errors import UserError
from tests import helpers

# Plain SGD: the update is linear in the gradient, so equal gradients give equal parameters
# (Adam's first step, g/|g|, would blow rounding noise in near-zero gradients up to ±lr).
SGD = {"optim.name": "sgd", "optim.b1": "0.0", "optim.learning_rate": "0.1",
       "optim.warmup_steps": "0"}


def _setup(experiment, k, **overrides):
  config = config_lib.load(f"experiments/{experiment}.py:small",
                           {**SGD, "optim.accumulate_steps": str(k), **overrides})
  family = families.get(config.family)
  batch, state = helpers.random_batch(family, config), helpers.init_state(family, config)
  return config, family, state, batch


def test_micro_batches_are_strided_so_each_device_keeps_its_examples():
  split = accumulate.micro_batches({"x": jnp.arange(8)}, 2)["x"]
  np.testing.assert_array_equal(split, [[0, 2, 4, 6], [1, 3, 5, 7]])


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_an_exact_likelihood_step_is_the_same_accumulated_or_not_on_one_or_four_devices():
  """The autoregressive loss draws nothing, so 2 micro-batches must give the whole batch's
  step, scanned (on 4 devices: the strided split must shard the same way) or unrolled (on
  one). Each case is a compile of the step; the scan on one device adds nothing to these."""
  results = []
  for k, devices, unroll in ((1, 1, False), (2, 4, False), (2, 1, True)):
    config, family, _, batch = _setup("gated_pixelcnn_fashion_mnist", k,
                                      **{"mesh.data": str(devices),
                                         "optim.accumulate_unroll": str(unroll)})
    mesh = sharding.create_mesh(config.mesh)
    _, init, shardings = train.create_state_fns(config, family, mesh)
    with jax.set_mesh(mesh):
      state, metrics = train.compile_train_step(config, family, mesh, shardings)(
          init(), jax.device_put(batch, sharding.batch_sharding(mesh)))
    results.append((float(metrics["train/loss"]), jax.device_get(state.params)))
  (loss, params), *others = results
  for other_loss, other_params in others:
    np.testing.assert_allclose(other_loss, loss, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 other_params, params)


@pytest.mark.parametrize("experiment,overrides", [
    ("vae_fashion_mnist", {}),
    # Slow: the same scan and key folding as the VAE's, through a U-Net.
    pytest.param("edm_fashion_mnist", {"model.image_size": "8", "model.multipliers": "(1,)"},
                 marks=pytest.mark.slow)])
def test_an_accumulated_step_follows_the_mean_gradient_of_its_micro_batches(experiment,
                                                                            overrides):
  """Families that draw noise: the scanned, summed step equals one SGD step along the
  gradient of the micro-batches' mean loss taken in one pass, micro-batch j with the step
  key folded with j. (A one-level U-Net at 8×8: its code paths at a fraction of the
  compile.)"""
  config, family, state, batch = _setup(experiment, 2, **overrides)
  rng = state.step_rng()

  def mean_loss(params):
    micro = accumulate.micro_batches(batch, 2)
    return sum(family.train_loss(config, state, params, jax.tree.map(lambda x: x[j], micro),
                                 jax.random.fold_in(rng, j))[0] for j in range(2)) / 2

  loss, grads = jax.jit(jax.value_and_grad(mean_loss))(state.params)
  # Jitted: eager, each of optax's ops would be compiled on its own (8 s of this test).
  expected, _ = jax.jit(lambda g: train_state.apply_gradients(config, state, g))(grads)
  new, metrics = jax.jit(lambda s, b: family.train_step(config, s, b))(state, batch)
  np.testing.assert_allclose(float(metrics["train/loss"]), float(loss), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               new.params, expected.params)
  assert _moved(state.params, new.params)


@pytest.mark.parametrize("k,devices,ok", [(2, 4, True), (3, 1, False), (4, 4, False),
                                          (0, 1, False)])
def test_a_batch_that_does_not_split_is_a_one_line_error(k, devices, ok):
  config = config_lib.load("experiments/vae_fashion_mnist.py:small",
                           {"optim.accumulate_steps": str(k)})
  if ok:
    accumulate.check(config, 8, devices)
    return
  with pytest.raises(UserError, match=f"optim.accumulate_steps={k}: the batch of 8"):
    accumulate.check(config, 8, devices)


def test_the_gan_step_over_two_equal_micro_batches_is_the_step_over_one(monkeypatch):
  """Two micro-batches that are copies of one (real images, latents) must give that
  micro-batch's own unaccumulated step, for both networks and their BatchNorm statistics:
  the mean is taken, not the sum, and D is updated before G's gradient is taken."""
  from jaxgen.families import gan
  m, latent = 4, 16
  table = jax.random.normal(jax.random.PRNGKey(5), (m, latent))
  # Latent i of a chunk of `num` is table[i // (num / m)]: with 2 strided micro-batches of
  # 2m, each holds table[0..m-1], as the one batch of m does.
  monkeypatch.setattr(gan, "_latents", lambda rng, num, dim, truncation=0.0:
                      table[jnp.arange(num) // (num // m)])
  sgd = {f"optim.{net}.{key}": value for net in ("generator", "discriminator")
         for key, value in (("name", "sgd"), ("b1", "0.0"), ("learning_rate", "0.1"))}
  results = []
  for k, copies in ((1, 1), (2, 2)):
    config = config_lib.load("experiments/dcgan_fashion_mnist.py:small",
                             {**sgd, "optim.accumulate_steps": str(k), "ema_decay": "0.0"})
    pixels = jax.random.randint(jax.random.PRNGKey(1), (m, 28, 28, 1), 0, 256)
    batch = {"image": jnp.repeat(images.from_uint8(pixels, "symmetric", xp=jnp), copies, 0),
             "label": jnp.zeros(m * copies, jnp.int32)}
    state = helpers.init_state(gan, config)
    new, metrics = jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)
    results.append((metrics, jax.device_get((new.params, new.model_state))))
  (one, one_state), (two, two_state) = results
  for key in ("train/d_loss", "train/g_loss"):
    np.testing.assert_allclose(float(two[key]), float(one[key]), rtol=1e-5, err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               two_state, one_state)
  assert _moved(state.params, one_state[0])


def _moved(before, after) -> bool:
  return any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before),
                                                    jax.tree.leaves(after)))
