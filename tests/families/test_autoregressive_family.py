"""The autoregressive family: exact NLL, training, and cached sampling == naive sampling.

Sampling tests use 5x5 images and tiny networks, so the O((H·W)²) naive sampler stays cheap
(the networks' row mode is checked on non-square images in tests/models/test_pixelcnn.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config as config_lib
from jaxgen.errors import UserError
from jaxgen.families import autoregressive as ar
from tests import helpers

EXPERIMENTS = ["pixelcnn", "gated_pixelcnn", "pixelcnnpp", "pixelcnnpp_unet", "rowlstm"]


def _config(name, overrides=None):
  return config_lib.load(f"experiments/{name}_fashion_mnist.py:small", overrides or {})


def _tiny(name, channels=1, height=5, **model):
  """A `name` config on height² x channels images, no data pipeline involved."""
  config = _config(name, {"model.channels": str(channels)})
  with config.unlocked():
    config.model.update(image_size=height, **model)
  return config


# Eager, every jax op compiles a program of its own (50-80 ms each on 2 cores): the tests
# jit their family and model calls, with configs and Python ints closed over.
def _state(config):
  return helpers.init_state(ar, config)


def _batch(config, n=4):
  shape = (n, *ar.image_shape(config))
  return jax.jit(lambda: {"image": jax.random.randint(jax.random.PRNGKey(1), shape, 0, 256),
                          "label": jnp.arange(n) % 10})()


# Slow: the Gated PixelCNN's :small step, which tests/test_precision.py and
# tests/test_accumulate.py also take (finite losses, and from the same untrained start).
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name == "gated_pixelcnn" else name
    for name in EXPERIMENTS])
def test_one_step_per_experiment_config_and_untrained_bits_near_eight(name):
  config = _config(name)
  state, metrics = jax.jit(lambda s, b: ar.train_step(config, s, b))(_state(config),
                                                                     _batch(config))
  assert int(state.step) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
  assert 6.0 < float(metrics["train/bits_per_dim"]) < 10.0


# Each network once in the fast tier; the grey cases of networks tested in RGB are slow.
CASES = [pytest.param("pixelcnn", 1, marks=pytest.mark.slow), ("pixelcnn", 3),
         ("gated_pixelcnn", 1), pytest.param("pixelcnnpp", 1, marks=pytest.mark.slow),
         ("pixelcnnpp", 3), ("rowlstm", 3), ("pixelcnnpp_unet", 3),
         pytest.param("pixelcnnpp_unet", 1, marks=pytest.mark.slow)]
# PixelCNN++'s U-Net halves its images twice (4, 2, 1): its side must divide by 4.
_SIDE = {"pixelcnnpp_unet": 4}


@pytest.mark.parametrize("name,channels", CASES)
def test_cached_sampling_draws_exactly_what_naive_sampling_draws(name, channels):
  side = _SIDE.get(name, 5)
  config = _tiny(name, channels, height=side, num_classes=0)
  state = _state(config)
  rng = jax.random.PRNGKey(3)
  run = jax.jit(lambda s, cached: ar.sample_with_log_probs(config, s, rng, 3, cached=cached),
                static_argnums=1)
  cached, cached_log_prob = run(state, True)
  naive, naive_log_prob = run(state, False)
  assert cached.shape == (3, side, side, channels) and cached.dtype == jnp.int32
  np.testing.assert_array_equal(cached, naive)
  np.testing.assert_allclose(cached_log_prob, naive_log_prob, rtol=1e-5)
  # The sampler's per-step log-probabilities sum to the parallel (training) pass's log p(x).
  parallel = jax.jit(lambda p, x: -ar.nll_nats(config, p, x))(state.params, cached)
  np.testing.assert_allclose(cached_log_prob, parallel, rtol=1e-5)
  # Untrained models spread their mass: the draws are not all one value.
  assert len(np.unique(np.asarray(cached))) > 10


def test_dropout_acts_in_training_only():
  config = _tiny("pixelcnnpp_unet", 1, height=4, dropout=0.5)
  state, batch = _state(config), _batch(config)
  loss = jax.jit(lambda rng: ar.train_loss(config, state, state.params, batch, rng)[0])
  nll = jax.jit(lambda: ar.nll_nats(config, state.params, batch["image"]))
  assert float(loss(jax.random.PRNGKey(0))) != float(loss(jax.random.PRNGKey(1)))
  np.testing.assert_array_equal(nll(), nll())  # Evaluation and sampling: no rng, no dropout.


def test_conditional_samples_follow_their_labels_and_cycle_by_default():
  config = _tiny("gated_pixelcnn", 1, height=4, num_classes=3)
  state = _state(config)
  rng = jax.random.PRNGKey(0)
  # One program for both label sets (and one without labels).
  sample = jax.jit(lambda s, cond: ar.sample(
      config, s.replace(params=jax.tree.map(lambda p: p * 3.0, s.params)), rng, 3, cond))
  by_default = sample(state, None)
  np.testing.assert_array_equal(by_default, sample(state, {"label": jnp.array([0, 1, 2])}))
  assert not np.array_equal(by_default, sample(state, {"label": jnp.array([1, 1, 1])}))


def test_nll_is_exact_against_summing_the_conditionals_by_hand():
  """−log p(x) from the parallel pass equals Σ −log p(x_i | x_<i) read off pixel by pixel
  from inputs that hide everything from pixel i on (a direct check of the chain rule)."""
  config = _tiny("pixelcnn", 1, height=3)
  state = _state(config)
  image = _batch(config, 2)["image"]
  model = ar.build_model(config)

  @jax.jit  # t traced: one program for the nine pixels.
  def log_probs(params, t):
    i, j = t // 3, t % 3
    hidden = (jnp.arange(9) >= t).reshape(1, 3, 3, 1)  # Pixels t, t + 1, … in raster order.
    visible = jnp.where(hidden, 0, image)
    logits = model.apply({"params": params}, ar._network_input(config, visible))[:, i, j, 0]
    return jax.nn.log_softmax(logits)

  total = np.zeros(2)
  for t in range(9):
    i, j = divmod(t, 3)
    logits = np.asarray(log_probs(state.params, t))
    total -= logits[np.arange(2), np.asarray(image)[:, i, j, 0]]
  np.testing.assert_allclose(jax.jit(lambda p: ar.nll_nats(config, p, image))(state.params),
                             total, rtol=1e-5)


def test_a_fixed_batch_is_overfit():
  # Four flat images: after the first pixel, each pixel repeats its left or upper neighbour.
  config = _tiny("gated_pixelcnn", 1, height=6, features=16)
  batch = {"image": jnp.broadcast_to(jnp.array([10, 80, 150, 220])[:, None, None, None],
                                     (4, 6, 6, 1))}
  step = jax.jit(lambda s, b: ar.train_step(config, s, b))
  state, first = step(_state(config), batch)
  for _ in range(200):
    state, metrics = step(state, batch)
  assert float(metrics["train/loss"]) < 0.25 * float(first["train/loss"])


def test_eval_metrics_are_per_example_bits_per_dim():
  config = _tiny("pixelcnnpp", 1, height=4)
  batch = _batch(config, 3)
  metrics = jax.device_get(jax.jit(lambda s, b: ar.eval_metrics(config, s, b, None))(
      _state(config), batch))
  np.testing.assert_allclose(metrics["bits_per_dim"],
                             metrics["nll_nats"] / (16 * np.log(2.0)), rtol=1e-6)
  assert metrics["nll_nats"].shape == (3,)


@pytest.mark.parametrize("overrides,message", [
    ({"model.likelihood": "bernoulli"}, "takes categorical or logistic_mixture"),
    ({"data.normalize": "unit"}, "data.normalize='integer'"),
    ({"model.name": "conv_vae"}, "not autoregressive"),
])
def test_bad_configs_are_user_errors(overrides, message):
  with pytest.raises(UserError, match=message):
    ar.build_model(_config("pixelcnn", overrides))
