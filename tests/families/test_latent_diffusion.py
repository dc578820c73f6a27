"""Latent diffusion (jaxgen/latents.py): the diffusion family on a frozen VQ-VAE's code grid,
trained, resumed and sampled through the loop on the bundled data."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgen import inference, latents, train
from jaxgen.errors import UserError
from jaxgen.models import likelihoods
from jaxgen.train_state import sampling_params
from tests.helpers import final_params, read_metrics, small_config

LDM = "experiments/ldm_fashion_mnist.py"
# One resolution without attention, as the diffusion family's own loop tests.
TINY = {"model.attention": "()", "sample_every": 3}


def _config(data_dir, source, total, **overrides):
  return small_config(LDM, data_dir, total_steps=total, **{
      "diffusion.autoencoder_from": source, **TINY, **overrides})


def _grid(workdir):
  return np.asarray(Image.open(os.path.join(workdir, "samples", "step_00000003.png")), int)


def test_a_run_carries_its_autoencoder_and_resumes_without_its_source(data_dir, small_vqvae,
                                                                     tmp_path):
  """Step 0 copies the VQ-VAE's sampling weights and codebook exactly; 2 steps, the source
  deleted, then a resume to 3 equal the uninterrupted 3 steps bit for bit: losses,
  parameters and the decoded sample grid (8-bit pixels of the 28×28 data, not latents)."""
  copy = str(tmp_path / "vqvae_copy")
  shutil.copytree(small_vqvae, copy)
  resumed, uninterrupted = str(tmp_path / "resumed"), str(tmp_path / "uninterrupted")
  train.train_and_evaluate(_config(data_dir, copy, 2), resumed)
  *_, state = inference.restore(resumed)
  *_, source = inference.restore(small_vqvae)
  carried = jax.device_get(state.model_state[latents.KEY])
  jax.tree.map(np.testing.assert_array_equal, carried,
               jax.device_get({"params": sampling_params(source), **source.model_state}))
  shutil.rmtree(copy)
  train.train_and_evaluate(_config(data_dir, copy, 3), resumed)
  train.train_and_evaluate(_config(data_dir, small_vqvae, 3), uninterrupted)
  losses = [[r["train/loss"] for r in read_metrics(w)] for w in (resumed, uninterrupted)]
  assert len(losses[0]) == 3 and losses[0] == losses[1]
  jax.tree.map(np.testing.assert_array_equal, final_params(resumed),
               final_params(uninterrupted))
  grid = _grid(resumed)
  assert grid.shape == (28 + 2 * 2, 10 * (28 + 2) + 2)  # 4 samples, one class per column.
  np.testing.assert_array_equal(grid, _grid(uninterrupted))


# Slow: a second mesh's compile of every program; the fast tier checks 1 against 4 devices
# through the loop on the GAN and the VAE (tests/test_train.py).
@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_one_device_and_four_devices_train_and_sample_alike(data_dir, small_vqvae, tmp_path):
  """3 steps on 1 device against 3 on 4: the same losses and decoded sample grids (the
  VQ-VAE's pixel draws included)."""
  runs = {n: str(tmp_path / str(n)) for n in (1, 4)}
  for devices, workdir in runs.items():
    train.train_and_evaluate(_config(data_dir, small_vqvae, 3, **{"mesh.data": devices}),
                             workdir)
  losses = [[r["train/loss"] for r in read_metrics(w)] for w in runs.values()]
  np.testing.assert_allclose(losses[0], losses[1], rtol=2e-4)
  np.testing.assert_allclose(_grid(runs[1]), _grid(runs[4]), atol=1)


@pytest.mark.parametrize("overrides,message", [
    ({"diffusion.autoencoder.code_dim": "8", "model.channels": "8"},
     r"its model differs from diffusion.autoencoder \(code_dim: 4 there, 8 here\)"),
    ({"model.channels": "5"}, "model.channels=5: the autoencoder's latents are 7×7×4; set "
                              "model.image_size=7 and model.channels=4"),
    ({"diffusion.autoencoder_from": ""}, "diffusion.autoencoder_from is empty"),
])
def test_a_mismatched_or_missing_autoencoder_is_refused_before_anything_is_written(
    data_dir, small_vqvae, tmp_path, overrides, message):
  workdir = tmp_path / "ldm"
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(_config(data_dir, small_vqvae, 1, **overrides), str(workdir))
  assert not workdir.exists()


def test_a_run_of_another_family_is_no_autoencoder(data_dir, small_vqvae, tmp_path):
  other = str(tmp_path / "gan")
  train.train_and_evaluate(small_config("experiments/dcgan_fashion_mnist.py", data_dir,
                                        total_steps=1), other)
  with pytest.raises(UserError, match="is a gan run: pass the workdir of a VQ-VAE run"):
    train.train_and_evaluate(_config(data_dir, other, 1), str(tmp_path / "ldm"))


def test_latents_are_standardised_codes_that_decode_as_the_vqvae_does(data_dir, small_vqvae):
  """Decoding an image's latents snaps back to its own codes: the pixels are the VQ-VAE's
  own reconstruction drawn with the same key."""
  config = _config(data_dir, small_vqvae, 1)
  *_, source = inference.restore(small_vqvae)
  variables = {"params": sampling_params(source), **source.model_state}
  model_state = {latents.KEY: variables}
  x = jax.random.randint(jax.random.PRNGKey(3), (6, 28, 28, 1), 0, 256) / 127.5 - 1.0
  rng = jax.random.PRNGKey(4)
  z = latents.encode(config, model_state, x)
  assert z.shape == (6, 7, 7, 4)
  model = latents.build(config)
  decoded = model.apply(variables, (x + 1.0) / 2.0, False)[0]
  expected = likelihoods.sample(model.likelihood, rng, decoded, 1) / 127.5 - 1.0
  np.testing.assert_array_equal(latents.decode(config, model_state, z, rng), expected)


def test_the_latent_moments_are_the_codebooks_usage_weighted_ones():
  codebook = jnp.array([[0.0, 0.0], [2.0, 4.0]])
  stats = {"batch_stats": {"quantizer": {"codebook": codebook,
                                         "cluster_size": jnp.array([3.0, 1.0])}}}
  mean, std = latents._moments(stats)
  # Usage 3/4 and 1/4: mean (0.5, 1); variances 0.75 and 3, their mean 1.875.
  np.testing.assert_allclose(mean, [0.5, 1.0])
  np.testing.assert_allclose(std, np.sqrt(1.875), rtol=1e-6)
