"""The SRGAN family: an untrained generator is the bicubic baseline, training on a few images
beats it, the feature loss is the feature network's, and runs resume exactly and agree on
one and four devices."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen import config as config_lib, families, superres, train
from jaxgen.errors import UserError
from tests.helpers import final_params, init_state, read_metrics, small_config

EXPERIMENT = "experiments/srgan_fashion_mnist.py"


def _test_images(config, family, n):
  images = train.load_data(config, family, "test").images[:n]
  return jnp.asarray(images / 127.5 - 1, jnp.float32)


def test_an_untrained_generator_upscales_as_bicubic_and_training_beats_it(data_dir):
  """Trained on 4 test images many times, the :small-width generator upscales them better
  than bicubic in PSNR and SSIM; before training it *is* bicubic (its residual starts at 0)."""
  config = config_lib.load(f"{EXPERIMENT}:small", {
      "data.data_dir": data_dir, "model.generator.features": "16", "model.generator.blocks": "2",
      "optim.generator.learning_rate": "2e-3", "ema_decay": "0.0"})
  family = families.get(config.family)
  batch = {"image": _test_images(config, family, 4), "label": jnp.zeros((4,), jnp.int32)}
  state = init_state(family, config)
  step = jax.jit(lambda s: family.train_step(config, s, batch))
  evaluate = jax.jit(lambda s: family.eval_metrics(config, s, batch, jax.random.PRNGKey(3)))
  mean = lambda metrics: {k: float(v.mean()) for k, v in metrics.items()}
  untrained = mean(evaluate(state))
  np.testing.assert_allclose(untrained["psnr"], untrained["baseline_psnr"], rtol=1e-6)
  for _ in range(300):
    state, metrics = step(state)
  trained = mean(evaluate(state))
  assert float(metrics["train/skipped"]) == 0
  assert trained["psnr"] > trained["baseline_psnr"] + 1.5, trained
  assert trained["ssim"] > trained["baseline_ssim"] + 0.05, trained
  assert trained["baseline_psnr"] == untrained["baseline_psnr"]  # The same degraded inputs.


def test_the_feature_loss_is_the_feature_networks_distance(data_dir, feature_network):
  """At step 0 the generator's output is the bicubic upsampling, so each loss term has a
  closed form: the mean |bicubic − x| and the mean ‖φ(bicubic) − φ(x)‖² over the batch."""
  from jaxgen.evaluators import features
  root, _, _ = feature_network
  config = config_lib.load(f"{EXPERIMENT}:small", {
      "data.data_dir": data_dir, "srgan.feature_weight": "0.5",
      "evaluation.feature_network": "fashion_mnist_small", "evaluation.features_dir": root})
  family = families.get(config.family)
  batch = {"image": _test_images(config, family, 8), "label": jnp.zeros((8,), jnp.int32)}
  _, metrics = jax.jit(lambda s: family.train_step(config, s, batch))(init_state(family, config))
  sr = superres.options(config)
  state0 = init_state(family, config)
  low = superres.low_resolution(sr, batch["image"], jax.random.fold_in(
      state0.step_rng(), superres.KEY_STREAM))
  bicubic = jax.image.resize(low, batch["image"].shape, "cubic")
  phi, _ = features.load("fashion_mnist_small", root)
  expected = float(jnp.mean(jnp.sum((phi(bicubic) - phi(batch["image"])) ** 2, -1)))
  # To float32 rounding of a sum of 128 squares near 100, compiled in two different programs.
  np.testing.assert_allclose(float(metrics["train/feature_loss"]), expected, rtol=1e-3)
  np.testing.assert_allclose(float(metrics["train/pixel_loss"]),
                             float(jnp.mean(jnp.abs(bicubic - batch["image"]))), rtol=1e-4)
  np.testing.assert_allclose(
      float(metrics["train/g_loss"]), float(metrics["train/pixel_loss"]) + 1e-3 * float(
          metrics["train/adversarial_loss"]) + 0.5 * float(metrics["train/feature_loss"]),
      rtol=1e-5)


@pytest.mark.parametrize("overrides,fragment", [
    ({"gan.n_critic": "2"}, "gan.n_critic=2"), ({"srgan.pixel_loss": "l3"}, "l3"),
    ({"srgan.adversarial_weight": "-1.0"}, "adversarial_weight=-1.0"),
    ({"superres.factor": "3"}, "superres.factor=3"),
    ({"optim.accumulate_steps": "2"}, "accumulate_steps=2")])
def test_bad_configs_are_one_line_errors(overrides, fragment):
  config = config_lib.load(f"{EXPERIMENT}:small", overrides)
  with pytest.raises(UserError, match=fragment):
    families.get("srgan").build_models(config)


def test_runs_resume_bit_for_bit_agree_on_one_and_four_devices_and_upscale(data_dir, tmp_path):
  from jaxgen import inference
  runs = {}
  for name, stops, overrides in (("four", (3,), {"sample_every": 3}), ("resumed", (1, 3), {}),
                                 ("one", (3,), {"mesh.data": 1})):
    runs[name] = str(tmp_path / name)
    for total in stops:
      train.train_and_evaluate(small_config(EXPERIMENT, data_dir, total_steps=total,
                                            **overrides), runs[name])
  # Its grid: 4 fixed images as baseline, upscaling and original rows (sampling takes
  # nothing from training: the runs still agree).
  from PIL import Image
  grid = Image.open(os.path.join(runs["four"], "samples", "step_00000003.png"))
  assert grid.size == (4 * 30 + 2, 3 * 30 + 2)
  train_metrics = lambda w: [{k: v for k, v in r.items() if k.startswith("train/")}
                             for r in read_metrics(w)]
  assert train_metrics(runs["four"]) == train_metrics(runs["resumed"])
  jax.tree.map(np.testing.assert_array_equal, final_params(runs["four"]),
               final_params(runs["resumed"]))
  for one, four in zip(train_metrics(runs["one"]), train_metrics(runs["four"]), strict=True):
    for key in one:
      np.testing.assert_allclose(one[key], four[key], rtol=2e-4, atol=1e-5, err_msg=key)
  config, family, mesh, state = inference.restore(runs["four"])
  high = inference.upscale_uint8(config, family, mesh, state,
                                 np.full((3, 7, 7, 1), 128, np.uint8), seed=0)
  assert high.shape == (3, 28, 28, 1) and high.dtype == np.uint8
