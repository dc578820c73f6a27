"""The GAN family's step: both networks move, losses are the non-saturating ones, EMA works."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import config as config_lib, train_state
from jaxgen.families import gan

SMALL = "experiments/dcgan_fashion_mnist.py:small"


def _setup(**overrides):
  config = config_lib.load(SMALL, {k: str(v) for k, v in overrides.items()})
  state = gan.init_state(config, jax.random.PRNGKey(0), gan.image_shape(config))
  images = jax.random.uniform(jax.random.PRNGKey(1), (8, 28, 28, 1), minval=-1.0, maxval=1.0)
  return config, state, {"image": images}


def test_step_updates_both_networks_and_their_batch_stats():
  config, state, batch = _setup()
  new, metrics = jax.jit(lambda s, b: gan.train_step(config, s, b))(state, batch)
  for net in (gan.G, gan.D):
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params[net], new.params[net])
    assert all(jax.tree.leaves(changed)), net
    stats = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.model_state[net],
                         new.model_state[net])
    assert stats and all(jax.tree.leaves(stats)), net
  assert int(new.step) == 1
  # At initialisation D is near chance: each non-saturating term is about log 2.
  np.testing.assert_allclose(float(metrics["train/d_loss"]), 2 * np.log(2), atol=0.3)
  np.testing.assert_allclose(float(metrics["train/g_loss"]), np.log(2), atol=0.3)


def test_generator_gradient_via_vjp_equals_direct_differentiation():
  config, state, batch = _setup()
  generator, discriminator = gan.build_models(config)
  z = jax.random.normal(state.step_rng(), (8, generator.latent_dim))
  new, _ = gan.train_step(config, state, batch)
  # Recompute G's loss directly through the updated D and compare the Adam step's direction.
  def g_loss(g_params):
    fake, _ = generator.apply({"params": g_params, "batch_stats": state.model_state[gan.G]}, z,
                              train=True, mutable=["batch_stats"])
    _, d_stats = gan._apply_d(discriminator, state.params[gan.D], state.model_state[gan.D],
                              batch["image"])
    _, d_stats = gan._apply_d(discriminator, state.params[gan.D], d_stats, fake)
    logits, _ = gan._apply_d(discriminator, new.params[gan.D], d_stats, fake)
    return jnp.mean(jax.nn.softplus(-logits))
  grads = jax.grad(g_loss)(state.params[gan.G])
  # Adam's first step moves every weight by lr·sign(grad) (up to epsilon).
  lr = config.optim.generator.learning_rate
  moved = jax.tree.map(lambda a, b: (b - a) / lr, state.params[gan.G], new.params[gan.G])
  agree = jax.tree.map(lambda m, g: np.mean(np.sign(m) == -np.sign(g)), moved, grads)
  assert min(jax.tree.leaves(agree)) > 0.95


def test_ema_arithmetic():
  ema = {"w": jnp.array([1.0, 2.0])}
  out = train_state.ema_update(ema, {"w": jnp.array([3.0, 0.0])}, 0.9, step=1000)
  np.testing.assert_allclose(out["w"], [1.2, 1.8], rtol=1e-6)
  # Warm-up: at step 0 the decay is 1/10, so the new weights dominate.
  out = train_state.ema_update(ema, {"w": jnp.array([3.0, 0.0])}, 0.9, step=0)
  np.testing.assert_allclose(out["w"], [2.8, 0.2], rtol=1e-6)
  assert train_state.ema_update({}, {"w": jnp.ones(2)}, 0.9, step=0) == {}


def test_sampling_uses_ema_generator_when_kept():
  config, state, batch = _setup(ema_decay=0.5)
  new, _ = gan.train_step(config, state, batch)
  d = 0.1  # The warmed-up decay at step 0: min(0.5, 1/10).
  expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, state.params[gan.G],
                          new.params[gan.G])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               new.ema_params[gan.G], expected)
  samples = gan.sample(config, new, jax.random.PRNGKey(0), 5)
  assert samples.shape == (5, 28, 28, 1)
  assert float(jnp.max(jnp.abs(samples))) <= 1.0
