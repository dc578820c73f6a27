"""The GAN family's step: both networks move, losses are the non-saturating ones, EMA works."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import conditioning, config as config_lib, train_state
from jaxgen.errors import UserError
from jaxgen.families import gan
from tests import helpers

SMALL = "experiments/dcgan_fashion_mnist.py:small"


# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# below jit their family and model calls, share the states they only read, and compare in
# numpy.
@functools.cache
def _setup(**overrides):
  """(config, initial state, batch of 8 images), built once per `overrides` for the tests."""
  config = config_lib.load(SMALL, {k: str(v) for k, v in overrides.items()})
  state = helpers.init_state(gan, config)
  images = jax.jit(lambda: jax.random.uniform(jax.random.PRNGKey(1), (8, 28, 28, 1),
                                              minval=-1.0, maxval=1.0))()
  return config, state, {"image": images}


@functools.cache
def _stepped(**overrides):
  """(state, metrics) after one jitted train_step from `_setup(**overrides)`."""
  config, state, batch = _setup(**overrides)
  return jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)


@functools.cache
def _sampler(num, **overrides):
  """Jitted state -> gan.sample(config of `overrides`, state, PRNGKey(0), num)."""
  config = config_lib.load(SMALL, {k: str(v) for k, v in overrides.items()})
  return jax.jit(lambda s: gan.sample(config, s, jax.random.PRNGKey(0), num))


def _differs(a, b):
  return bool(np.any(np.asarray(a) != np.asarray(b)))


def test_step_updates_both_networks_and_their_batch_stats():
  _, state, _ = _setup()
  new, metrics = _stepped()
  for net in (gan.G, gan.D):
    changed = jax.tree.map(_differs, state.params[net], new.params[net])
    assert all(jax.tree.leaves(changed)), net
    stats = jax.tree.map(_differs, state.model_state[net], new.model_state[net])
    assert stats and all(jax.tree.leaves(stats)), net
  assert int(new.step) == 1
  # At initialisation D is near chance: each non-saturating term is about log 2.
  np.testing.assert_allclose(float(metrics["train/d_loss"]), 2 * np.log(2), atol=0.3)
  np.testing.assert_allclose(float(metrics["train/g_loss"]), np.log(2), atol=0.3)


def test_generator_gradient_via_vjp_equals_direct_differentiation():
  config, state, batch = _setup()
  generator, discriminator = gan.build_models(config)
  # The latents of the step's (only) critic chunk, drawn as train_step draws them.
  (critic_key,) = jax.random.split(state.step_rng(), 1)
  g_rng = jax.random.split(critic_key, 3)[0]
  z = jax.random.normal(jax.random.split(g_rng)[0], (8, generator.latent_dim))
  new, _ = jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)
  # Recompute G's loss directly through the updated D and compare the Adam step's direction.
  def g_loss(g_params):
    fake, _ = generator.apply({"params": g_params, "batch_stats": state.model_state[gan.G]}, z,
                              train=True, mutable=["batch_stats"])
    _, d_stats = gan.apply_discriminator(discriminator, state.params[gan.D],
                                         state.model_state[gan.D], batch["image"], None)
    _, d_stats = gan.apply_discriminator(discriminator, state.params[gan.D], d_stats, fake, None)
    logits, _ = gan.apply_discriminator(discriminator, new.params[gan.D], d_stats, fake, None)
    return jnp.mean(jax.nn.softplus(-logits))
  # Jitted, as the step above: eager, each of their ~240 ops would compile on its own.
  grads = jax.jit(jax.grad(g_loss))(state.params[gan.G])
  # Adam's first step moves every weight by lr·sign(grad) (up to epsilon).
  lr = config.optim.generator.learning_rate
  moved = jax.tree.map(lambda a, b: (b - a) / lr, state.params[gan.G], new.params[gan.G])
  agree = jax.tree.map(lambda m, g: np.mean(np.sign(m) == -np.sign(g)), moved, grads)
  assert min(jax.tree.leaves(agree)) > 0.95


def test_ema_arithmetic():
  ema = {"w": jnp.array([1.0, 2.0])}
  update = jax.jit(lambda e, p, step: train_state.ema_update(e, p, 0.9, step))
  out = update(ema, {"w": jnp.array([3.0, 0.0])}, 1000)
  np.testing.assert_allclose(out["w"], [1.2, 1.8], rtol=1e-6)
  # Warm-up: at step 0 the decay is 1/10, so the new weights dominate.
  out = update(ema, {"w": jnp.array([3.0, 0.0])}, 0)
  np.testing.assert_allclose(out["w"], [2.8, 0.2], rtol=1e-6)
  assert train_state.ema_update({}, {"w": np.ones(2, np.float32)}, 0.9, step=0) == {}


def test_sampling_uses_ema_generator_when_kept():
  _, state, _ = _setup(ema_decay=0.5)
  new, _ = _stepped(ema_decay=0.5)
  d = 0.1  # The warmed-up decay at step 0: min(0.5, 1/10).
  expected = jax.tree.map(lambda e, p: d * np.asarray(e) + (1 - d) * np.asarray(p),
                          state.params[gan.G], new.params[gan.G])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               new.ema_params[gan.G], expected)
  samples = np.asarray(_sampler(5, ema_decay=0.5)(new))
  assert samples.shape == (5, 28, 28, 1)
  assert float(np.max(np.abs(samples))) <= 1.0


def _shrunk(name, overrides):
  """An experiment config at test size (the CIFAR one has no small variant: no data here)."""
  return config_lib.load(name, {k: str(v) for k, v in overrides.items()})


_SIXTEEN = {"model.generator.image_size": 16, "model.discriminator.image_size": 16}
CONFIGS = {
    "dcgan": ("experiments/dcgan_fashion_mnist.py:small", {}),
    "cdcgan": ("experiments/cdcgan_fashion_mnist.py:small", {}),
    "wgan_gp": ("experiments/wgan_gp_fashion_mnist.py:small", {}),
    # 16x16 and n_critic 2 rather than 32x32 and 5: every critic update and residual block is
    # compiled into the step, and compiling them dominated these tests.
    "sngan_cifar10": ("experiments/sngan_cifar10.py", {
        **_SIXTEEN, "batch_size": 4, "gan.n_critic": 2, "model.generator.features": 8,
        "model.generator.latent_dim": 8, "model.discriminator.features": 8}),
    "sngan_cifar10_conditional_r1_diffaugment": ("experiments/sngan_cifar10.py:conditional", {
        **_SIXTEEN, "batch_size": 2, "gan.n_critic": 1, "model.generator.features": 8,
        "model.generator.latent_dim": 8, "model.discriminator.features": 8,
        "gan.r1_gamma": 1.0, "gan.r1_every": 1, "gan.diffaugment": "color,translation,cutout"}),
}


# Traced, not compiled: the residual networks compile in tests/models/test_remat.py (and in
# the conditional variant, slow); compiling this one too took 25 s more.
TRACED = ("sngan_cifar10",)


# Slow: the residual networks with R1 and DiffAugment compiled (traced unconditional above;
# R1 and DiffAugment run in this file's lazy-R1 test and in test_diffaugment.py), and the
# conditional DCGAN, whose :small step trains through the loop in tests/test_cli.py's
# conditional test (and its labels in test_conditional_sampling_gives_the_requested_labels).
SLOW = ("sngan_cifar10_conditional_r1_diffaugment", "cdcgan")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
    for name in sorted(CONFIGS)])
def test_one_step_per_experiment_config(name):
  config = _shrunk(*CONFIGS[name])
  shape = gan.image_shape(config)
  batch = {"image": jax.jit(lambda: jax.random.uniform(
               jax.random.PRNGKey(1), (config.batch_size, *shape), minval=-1.0, maxval=1.0))(),
           "label": np.arange(config.batch_size, dtype=np.int32) % 10}
  if name in TRACED:
    new, metrics = jax.eval_shape(lambda b: gan.train_step(
        config, gan.init_state(config, jax.random.PRNGKey(0), shape), b), batch)
    assert {"train/d_loss", "train/g_loss"} <= set(metrics) and new.step.shape == ()
    return
  state = helpers.init_state(gan, config)
  new, metrics = jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)
  assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
  for net in (gan.G, gan.D):
    # Kernels: the head's bias has zero gradient under the hinge and Wasserstein losses
    # while every example sits in the same regime.
    moved = [_differs(a, b) for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(state.params[net])[0],
        jax.tree.leaves(new.params[net])) if "kernel" in jax.tree_util.keystr(path)]
    assert moved and all(moved), (name, net)
  if config.gan.gradient_penalty:
    assert float(metrics["train/gradient_penalty"]) > 0.0
  if config.gan.r1_gamma:
    assert float(metrics["train/r1_penalty"]) > 0.0
  samples = jax.jit(lambda s: gan.sample(config, s, jax.random.PRNGKey(2), 3))(new)
  assert samples.shape == (3, *shape)


def test_critic_updates_each_see_their_own_chunk_of_the_batch():
  batch = {"image": np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1),
           "label": np.arange(12, dtype=np.int32)}
  chunks = jax.jit(gan._critic_chunks, static_argnums=1)(batch, 3)
  assert chunks["image"].shape == (3, 4, 1, 1, 1)
  np.testing.assert_array_equal(chunks["label"][1], [1, 4, 7, 10])
  assert sorted(np.asarray(chunks["label"]).ravel().tolist()) == list(range(12))


def test_n_critic_must_divide_the_batch():
  with pytest.raises(UserError, match="n_critic=3"):
    _setup(**{"gan.n_critic": 3})


def test_lazy_r1_only_on_every_kth_step():
  config, state, batch = _setup(**{"gan.r1_gamma": 10.0, "gan.r1_every": 2,
                                   "model.discriminator.norm": "none"})
  step = jax.jit(lambda s, b: gan.train_step(config, s, b))
  state, first = step(state, batch)
  _, second = step(state, batch)
  assert float(first["train/r1_penalty"]) > 0.0 and float(second["train/r1_penalty"]) == 0.0


def test_conditional_sampling_gives_the_requested_labels():
  config = config_lib.load("experiments/cdcgan_fashion_mnist.py:small", {})
  state = helpers.init_state(gan, config)
  np.testing.assert_array_equal(conditioning.class_labels(config, 12), np.arange(12) % 10)

  @jax.jit
  def sevens_and_regenerated(state):
    rng = jax.random.PRNGKey(1)
    sevens = gan.sample(config, state, rng, 4, {"label": jnp.full((4,), 7)})
    z = jax.random.normal(rng, (4, gan.latent_dim(config)))
    return (sevens, gan.generate_from(config, state, z, jnp.full((4,), 7)),
            gan.generate_from(config, state, z, jnp.full((4,), 2)))
  sevens, from_z, twos = sevens_and_regenerated(state)
  np.testing.assert_allclose(sevens, from_z, rtol=1e-6)
  assert not np.allclose(sevens, twos)


def test_latent_paths_end_at_their_endpoints_and_slerp_keeps_the_norm():
  z0, z1 = np.asarray(jax.jit(lambda: jax.random.normal(jax.random.PRNGKey(0), (2, 3, 64)))())
  latent_path = jax.jit(gan.latent_path, static_argnums=(2, 3))
  for mode in ("linear", "spherical"):
    path = np.asarray(latent_path(z0, z1, 5, mode))
    assert path.shape == (3, 5, 64)
    np.testing.assert_allclose(path[:, 0], z0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(path[:, -1], z1, rtol=1e-5, atol=1e-5)
  norms = lambda mode: np.linalg.norm(np.asarray(latent_path(z0, z1, 5, mode))[:, 2], axis=-1)
  start = np.linalg.norm(z0, axis=-1)
  assert np.all(norms("spherical") > 0.9 * start) and np.all(norms("linear") < 0.8 * start)


def test_sampling_labels_are_checked_against_the_classes():
  conditional = config_lib.load("experiments/cdcgan_fashion_mnist.py:small", {})
  np.testing.assert_array_equal(conditioning.class_labels(conditional, 12, None),
                                np.arange(12) % 10)
  np.testing.assert_array_equal(conditioning.class_labels(conditional, 3, 7), [7, 7, 7])
  with pytest.raises(UserError, match=r"--label 10: expected a class in \[0, 9\]"):
    conditioning.class_labels(conditional, 3, 10)
  unconditional = config_lib.load(SMALL, {})
  assert conditioning.class_labels(unconditional, 3, None) is None
  with pytest.raises(UserError, match="unconditional"):
    conditioning.class_labels(unconditional, 3, 0)


def test_standing_statistics_are_the_batch_statistics_of_the_sampled_weights():
  """Measured on a batch, then applied in inference mode to that batch, they give exactly
  the train-mode output (each layer normalised by its own batch statistics)."""
  from jaxgen.families import standing_stats
  config, state, _ = _setup()
  generator, _ = gan.build_models(config)

  @jax.jit
  def train_measured_and_running(params, stats):
    z = jax.random.normal(jax.random.PRNGKey(4), (16, generator.latent_dim))
    measured = standing_stats.measure(generator, params, stats, z, None)
    train_mode, _ = generator.apply({"params": params, "batch_stats": stats}, z, None,
                                    train=True, mutable=["batch_stats"])
    inference = generator.apply({"params": params, "batch_stats": measured}, z, None,
                                train=False)
    running = generator.apply({"params": params, "batch_stats": stats}, z, None, train=False)
    return train_mode, inference, running
  train_mode, inference, running = train_measured_and_running(state.params[gan.G],
                                                              state.model_state[gan.G])
  np.testing.assert_allclose(inference, train_mode, atol=2e-5)
  assert not np.allclose(running, train_mode, atol=1e-3)


def test_an_ema_generator_equal_to_the_raw_one_samples_identically():
  new, _ = _stepped(ema_decay=0.5)
  equal = new.replace(ema_params={gan.G: new.params[gan.G]})
  sample, raw_sample = _sampler(4, ema_decay=0.5), _sampler(4, ema_decay=0.0)
  np.testing.assert_array_equal(sample(equal), raw_sample(new.replace(ema_params={})))
  assert not np.allclose(sample(new), sample(equal))  # The real EMA differs.
  # sampling.weights='raw' samples the live weights even when an EMA is kept.
  np.testing.assert_array_equal(_sampler(4, ema_decay=0.5, **{"sampling.weights": "raw"})(new),
                                sample(equal))
  config = config_lib.load(SMALL, {"sampling.weights": "raw"})
  assert gan.provenance(config)["generator"] == "raw"
  with pytest.raises(UserError, match="sampling.weights='mean'"):
    _sampler(4, **{"sampling.weights": "mean"})(new)
