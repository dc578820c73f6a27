"""The VQ-VAE's learned prior (experiments/vqvae_prior_fashion_mnist.py): the autoregressive
family on a frozen VQ-VAE's code grid, its NLL the VQ-VAE's bound with the learned prior."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import inference, latents, train
from jaxgen.errors import UserError
from jaxgen.families import autoregressive
from jaxgen.train_state import sampling_params
from tests.helpers import final_params, read_metrics, small_config

PRIOR = "experiments/vqvae_prior_fashion_mnist.py"


def _config(data_dir, source, total, **overrides):
  return small_config(PRIOR, data_dir, total_steps=total, **{
      "autoregressive.autoencoder_from": source, **overrides})


@pytest.fixture(scope="module")
def runs(data_dir, small_vqvae, tmp_path_factory):
  """Three steps uninterrupted, and two then a resume to three."""
  base = tmp_path_factory.mktemp("prior")
  resumed, uninterrupted = str(base / "resumed"), str(base / "uninterrupted")
  for workdir, stops in ((resumed, (2, 3)), (uninterrupted, (3,))):
    for total in stops:
      train.train_and_evaluate(_config(data_dir, small_vqvae, total, eval_every=3), workdir)
  return resumed, uninterrupted


def test_a_prior_run_carries_its_vqvae_and_resumes_bit_for_bit(runs, small_vqvae):
  resumed, uninterrupted = runs
  *_, state = inference.restore(resumed)
  *_, source = inference.restore(small_vqvae)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.model_state[latents.KEY]),
               jax.device_get({"params": sampling_params(source), **source.model_state}))
  losses = [[r["train/loss"] for r in read_metrics(w) if "train/loss" in r] for w in runs]
  assert len(losses[0]) == 3 and losses[0] == losses[1]
  jax.tree.map(np.testing.assert_array_equal, final_params(resumed), final_params(uninterrupted))


def test_the_bound_is_the_reconstruction_plus_the_prior(runs):
  config, _, mesh, state = inference.restore(runs[0])
  evaluated = [r for r in read_metrics(runs[0]) if "eval/bits_per_dim" in r][-1]
  images = jax.random.randint(jax.random.PRNGKey(0), (4, 28, 28, 1), 0, 256)
  with jax.set_mesh(mesh):
    m = jax.jit(lambda s, x: autoregressive.eval_metrics(
        config, s, {"image": x, "label": jnp.arange(4)}, None))(state, images)
  np.testing.assert_allclose(m["nll_nats"], m["reconstruction_nats"] + m["prior_nats"],
                             rtol=1e-6)
  np.testing.assert_allclose(m["uniform_prior_nll_nats"],
                             m["reconstruction_nats"] + 49 * math.log(16), rtol=1e-6)
  np.testing.assert_allclose(m["bits_per_dim"], m["nll_nats"] / (784 * math.log(2)), rtol=1e-6)
  # Three steps from initialisation: near the 16 codes' uniform prior (only they have mass).
  np.testing.assert_allclose(m["prior_nats"], 49 * math.log(16), rtol=0.25)
  assert 3.0 < evaluated["eval/bits_per_dim"] < 12.0, evaluated


def test_overfitting_codes_takes_the_prior_below_the_uniform_one(runs, data_dir):
  """A few dozen steps on one batch of real images' codes: the learned prior's NLL of them
  falls below the uniform prior's 49·ln 16 nats."""
  config, _, mesh, state = inference.restore(runs[0])
  from jaxgen.data import datasets
  test = datasets.load_split(config.data, "test")
  codes = latents.codes(config, state.model_state, jnp.asarray(test.images[:16]))[..., None]
  labels = jnp.asarray(test.labels[:16])
  loss = lambda p: jnp.mean(autoregressive.nll_nats(config, p, codes, labels))
  optimizer = optax.adam(3e-3)

  @jax.jit
  def step(params, opt_state):
    grads = jax.grad(loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  params = state.params
  opt_state = optimizer.init(params)
  for _ in range(60):
    params, opt_state = step(params, opt_state)
  assert float(loss(params)) < 0.8 * 49 * math.log(16), float(loss(params))


def test_samples_are_decoded_pixels_and_the_cached_sampler_draws_the_naive_ones(runs):
  config, _, mesh, state = inference.restore(runs[0])
  rng = jax.random.PRNGKey(4)
  with jax.set_mesh(mesh):
    cached = jax.jit(lambda s: autoregressive.sample(config, s, rng, 4))(state)
    naive = jax.jit(lambda s: autoregressive.sample_naive(config, s, rng, 4))(state)
    # The codes behind them: only the VQ-VAE's 16, though the network has 256 outputs.
    codes = jax.jit(lambda s: autoregressive.sample_with_log_probs(
        config, s, rng, 64)[0])(state)
  assert cached.shape == (4, 28, 28, 1) and cached.dtype == jnp.int32
  assert 0 <= int(cached.min()) and int(cached.max()) <= 255
  np.testing.assert_array_equal(cached, naive)
  assert codes.shape == (64, 7, 7, 1) and int(codes.max()) < 16 and len(np.unique(codes)) > 8


@pytest.mark.parametrize("overrides,message", [
    ({"model.likelihood": "logistic_mixture"}, "a prior over codes is a 256-way categorical"),
    ({"model.image_size": "8"}, "the autoencoder's code grid is 7×7; set model.image_size=7"),
    ({"autoregressive.autoencoder_from": ""}, "autoregressive.autoencoder_from is empty"),
])
def test_a_misfit_prior_is_refused_before_anything_is_written(data_dir, small_vqvae, tmp_path,
                                                              overrides, message):
  workdir = tmp_path / "prior"
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(_config(data_dir, small_vqvae, 1, **overrides), str(workdir))
  assert not workdir.exists()


# Slow: a second mesh's compile of every program; the fast tier checks 1 against 4 devices
# through the loop on the GAN and the VAE (tests/test_train.py).
@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_one_device_and_four_devices_train_the_prior_alike(runs, data_dir, small_vqvae,
                                                           tmp_path):
  four = str(tmp_path / "four")
  train.train_and_evaluate(_config(data_dir, small_vqvae, 3, eval_every=3,
                                   **{"mesh.data": 4}), four)
  losses = [[r["train/loss"] for r in read_metrics(w) if "train/loss" in r]
            for w in (runs[1], four)]
  np.testing.assert_allclose(losses[0], losses[1], rtol=2e-5)
  evaluated = [[r["eval/bits_per_dim"] for r in read_metrics(w) if "eval/bits_per_dim" in r]
               for w in (runs[1], four)]
  np.testing.assert_allclose(evaluated[0], evaluated[1], rtol=2e-5)
