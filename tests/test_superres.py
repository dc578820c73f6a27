"""Super-resolution: the degradation is what its knobs say, PSNR/SSIM are the standard ones,
and SR3 learns to beat bicubic upsampling on images it has seen."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import superres
from jaxgen.errors import UserError
from jaxgen.evaluators import fidelity


def _opts(**overrides):
  opts = superres.default_options()
  opts.update(overrides)
  return opts


def _images(shape=(4, 28, 28, 1), seed=0):
  """8-bit images in [-1, 1]: pixel noise with a flat square in each."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, shape)
  x[:, 8:20, 8:20] = 0.8
  return jnp.asarray(np.round((x + 1) * 127.5) / 127.5 - 1, jnp.float32)


@pytest.mark.parametrize("factor", [2, 4])
def test_downsampling_an_upsampled_low_resolution_image_gives_it_back(factor):
  """The degraded image is the f×f block means rounded to 8 bits, and box ÷f after nearest
  ×f gives it back (to float rounding). Bicubic ×f does not, on pixel noise: it is the
  smooth baseline, not an inverse."""
  image = _images()
  low = superres.low_resolution(_opts(factor=factor), image, jax.random.PRNGKey(0))
  assert low.shape == (4, 28 // factor, 28 // factor, 1)
  blocks = np.asarray(image).reshape(4, 28 // factor, factor, 28 // factor, factor, 1)
  levels = (np.asarray(low) + 1) * 127.5
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # On the 8-bit grid.
  # Each the rounded block mean; a mean on a tie (x.5 levels) may round either way.
  np.testing.assert_allclose(levels, (blocks.mean((2, 4)) + 1) * 127.5, atol=0.5 + 1e-4)
  nearest = superres.upsample(_opts(upsample="nearest"), low, (28, 28, 1))
  np.testing.assert_allclose(superres.box_downsample(nearest, factor), low, atol=1e-6)
  cubic = superres.upsample(_opts(upsample="cubic"), low, (28, 28, 1))
  assert cubic.shape == (4, 28, 28, 1) and float(jnp.abs(cubic).max()) <= 1.0


def test_the_degradation_is_the_same_on_one_and_four_devices():
  """Block means on a tie (x.5 levels) round the same way however the batch is sharded: the
  sums are of integer levels, exact in any order. (Summed in [-1, 1] units they were not,
  and 1-vs-4-device SRGAN runs parted after one step.)"""
  from jax.sharding import AxisType, NamedSharding, PartitionSpec
  if jax.device_count() < 4:
    pytest.skip("needs 4 (fake) devices")
  image = _images((8, 28, 28, 1), seed=3)
  mesh = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Auto,))
  sharded = jax.device_put(image, NamedSharding(mesh, PartitionSpec("data")))
  degrade = jax.jit(lambda x: superres.low_resolution(_opts(), x, None))
  one = np.asarray(degrade(image))
  np.testing.assert_array_equal(one, np.asarray(degrade(sharded)))
  levels = np.round(np.asarray((image + 1) * 127.5)).reshape(8, 7, 4, 7, 4, 1).sum((2, 4))
  ties = levels % 16 == 8
  assert ties.any()  # The case this guards: a mean exactly halfway between two levels.
  np.testing.assert_array_equal(np.round((one + 1) * 127.5), np.round(levels / 16))  # Half to even.


def test_blur_keeps_a_flat_image_flat_and_smooths_an_edge():
  flat = jnp.full((1, 28, 28, 1), 0.3)
  np.testing.assert_allclose(superres.gaussian_blur(flat, 1.5), flat, atol=1e-6)
  edge = jnp.zeros((1, 28, 28, 1)).at[:, :, 14:].set(1.0)
  blurred = superres.gaussian_blur(edge, 1.0)
  assert blurred.shape == edge.shape
  taps = np.exp(-0.5 * np.arange(-3, 4) ** 2)  # σ 1: radius 3.
  taps /= taps.sum()
  # Pixel 13 gets the taps that reach 14..16, pixel 14 those that reach 14..17.
  np.testing.assert_allclose(blurred[0, 5, 13:15, 0], [taps[4:].sum(), taps[3:].sum()],
                             rtol=1e-5)
  np.testing.assert_allclose(blurred[0, 5, :10, 0], 0.0, atol=1e-6)


def test_noise_has_the_configured_deviation_and_is_deterministic_per_key():
  image = jnp.zeros((64, 28, 28, 1))
  opts = _opts(noise=0.1, quantise=False)
  low = superres.low_resolution(opts, image, jax.random.PRNGKey(1))
  assert abs(float(jnp.std(low)) - 0.1) < 0.005
  np.testing.assert_array_equal(low, superres.low_resolution(opts, image, jax.random.PRNGKey(1)))


@pytest.mark.parametrize("overrides,fragment", [
    (dict(factor=3), "not divisible"), (dict(factor=1), "at least 2"),
    (dict(blur=-1.0), "superres.blur=-1.0"), (dict(upsample="lanczos"), "lanczos"),
    (dict(jpeg=101), "superres.jpeg=101")])
def test_impossible_degradations_are_one_line_errors(overrides, fragment):
  with pytest.raises(UserError, match=fragment):
    superres.check(_opts(**overrides), (28, 28, 1))


def test_preview_grids_interleave_rows_and_pad_a_short_last_run():
  stacks = [np.full((5, 2, 2, 1), v, np.uint8) + np.arange(5, dtype=np.uint8)[:, None, None, None]
            for v in (0, 100, 200)]
  order = superres.preview_grid_order(*stacks, columns=4)
  assert order.shape == (24, 2, 2, 1)  # Two runs of three rows of 4.
  firsts = order[:, 0, 0, 0]
  np.testing.assert_array_equal(firsts[:12], [0, 1, 2, 3, 100, 101, 102, 103, 200, 201, 202, 203])
  np.testing.assert_array_equal(firsts[12:], [4, 255, 255, 255, 104, 255, 255, 255,
                                              204, 255, 255, 255])


def test_psnr_of_a_known_offset_and_of_a_copy():
  levels = np.random.default_rng(0).integers(0, 200, (3, 28, 28, 1))
  image = jnp.asarray(levels / 127.5 - 1, jnp.float32)
  shifted = jnp.asarray((levels + 4) / 127.5 - 1, jnp.float32)  # Every pixel 4 levels up.
  np.testing.assert_allclose(fidelity.psnr(shifted, image), 10 * np.log10(255 ** 2 / 16),
                             rtol=1e-5)
  np.testing.assert_array_equal(fidelity.psnr(image, image), 100.0)


def test_ssim_equals_tensorflows():
  import tensorflow as tf
  a, b = _images(seed=0), _images(seed=1) * 0.5 + 0.2 * _images(seed=2)
  expected = tf.image.ssim(tf.constant(np.asarray(fidelity.to_pixels(a))),
                           tf.constant(np.asarray(fidelity.to_pixels(b))), max_val=255.0)
  np.testing.assert_allclose(fidelity.ssim(a, b), expected.numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(fidelity.ssim(a, a), 1.0, atol=1e-6)


def test_sr3_overfit_on_a_few_images_beats_bicubic(data_dir):
  """SR3 (the :small U-Net, one level, at 16×16: 4×4 inputs) trained on 4 test images many
  times upscales them better than bicubic, in PSNR and SSIM; the baseline is the condition
  image itself."""
  from jaxgen import config as config_lib, families, train
  from tests.helpers import init_state
  config = config_lib.load("experiments/sr3_fashion_mnist.py:small",
                           {"data.data_dir": data_dir, "optim.learning_rate": "5e-3",
                            "optim.warmup_steps": "0", "ema_decay": "0.0",
                            "sampling.steps": "8", "model.multipliers": "(1,)",
                            "model.image_size": "16", "data.image_size": "16"})
  family = families.get(config.family)
  images = jnp.asarray(train.load_data(config, family, "test").images[:4], jnp.float32)
  batch = {"image": images / 127.5 - 1, "label": jnp.zeros((4,), jnp.int32)}
  state = init_state(family, config)
  step = jax.jit(lambda s: family.train_step(config, s, batch))
  sr = superres.options(config)
  low = superres.low_resolution(sr, batch["image"], None)  # Noise 0: no key needed.
  # The upscaling metrics alone: eval_metrics' bound and denoising errors would double the
  # compile.
  evaluate = jax.jit(lambda s: fidelity.upscaling_metrics(
      family.sample(config, s, jax.random.PRNGKey(5), 4, {"low_res": low}),
      superres.upsample(sr, low, batch["image"].shape[1:]), batch["image"]))
  mean = lambda metrics: {k: float(v.mean()) for k, v in metrics.items()}
  untrained = mean(evaluate(state))
  for _ in range(600):  # Measured: PSNR 18.5 against bicubic's 16.2, SSIM 0.68 against 0.47.
    state, _ = step(state)
  trained = mean(evaluate(state))
  assert untrained["psnr"] < untrained["baseline_psnr"], untrained
  assert trained["psnr"] > trained["baseline_psnr"] + 1.5, trained
  assert trained["ssim"] > trained["baseline_ssim"] + 0.05, trained
  assert trained["baseline_psnr"] == untrained["baseline_psnr"]  # The same degraded inputs.


def test_sr3_configs_are_checked():
  from jaxgen import config as config_lib, families
  family = families.get("diffusion")
  plain = config_lib.load("experiments/edm_fashion_mnist.py:small", {})
  with plain.unlocked():
    plain.model.cond_channels = 1
  with pytest.raises(UserError, match="model.cond_channels=1: only super-resolution"):
    family.build_model(plain)
  with pytest.raises(UserError, match="superres.factor=3"):
    family.build_model(config_lib.load("experiments/sr3_fashion_mnist.py:small",
                                       {"superres.factor": "3"}))


def test_upscale_takes_pngs_and_npz_and_refuses_what_it_cannot_upscale(tmp_path, data_dir, cli):
  """A one-step SR3 run (8×8 images, so ÷4 inputs are 2×2) writes its grid of fixed images,
  and `jaxgen upscale` takes a PNG in any mode and an .npz of several images; wrong sizes
  and `jaxgen sample` are one-line errors, and a run that is not super-resolution says so."""
  from PIL import Image
  from jaxgen import config as config_lib, images, inference, train
  from tests.helpers import small_config
  from tests.test_cli import assert_one_line_error
  workdir = str(tmp_path / "sr3")
  config = small_config("experiments/sr3_fashion_mnist.py", data_dir, total_steps=1,
                        sample_every=1, **{"model.multipliers": "(1,)", "model.image_size": "8",
                                           "data.image_size": "8"})
  train.train_and_evaluate(config, workdir)
  # The training-time grid: runs of (baseline, upscaling, original) rows of 4 examples.
  grid = np.asarray(Image.open(os.path.join(workdir, "samples", "step_00000001.png")))
  assert grid.shape == (3 * 10 + 2, 4 * 10 + 2)
  tiles = [[grid[2 + 10 * r:10 * r + 10, 2 + 10 * c:10 * c + 10, None] for c in range(4)]
           for r in range(3)]
  originals = images.from_uint8(np.stack(tiles[2]), "symmetric")
  low = superres.low_resolution(superres.options(config), originals, jax.random.PRNGKey(0))
  baseline = images.to_uint8(np.asarray(superres.upsample(superres.options(config), low,
                                                          (8, 8, 1))), "symmetric")
  np.testing.assert_allclose(baseline, np.stack(tiles[0]), atol=1)
  assert all(tile.std() > 0 for tile in tiles[2])  # Real images, not blank padding.
  assert all((tile != 255).any() for tile in tiles[1])  # Upscalings drawn, not padding.
  Image.fromarray(np.full((2, 2, 3), 200, np.uint8)).save(tmp_path / "low.png")  # RGB.
  result = cli("upscale", "--workdir", workdir, "--in", str(tmp_path / "low.png"), "--out",
               str(tmp_path / "high.png"))
  assert result.returncode == 0, result.stderr
  assert Image.open(tmp_path / "high.png").size == (8, 8)
  np.savez(tmp_path / "low.npz", images=np.arange(12, dtype=np.uint8).reshape(3, 2, 2, 1))
  assert cli("upscale", "--workdir", workdir, "--in", str(tmp_path / "low.npz"), "--out",
             str(tmp_path / "high.npz"), "--config.sampling.steps=2").returncode == 0
  assert np.load(tmp_path / "high.npz")["images"].shape == (3, 8, 8, 1)
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "big.png")
  assert_one_line_error(cli("upscale", "--workdir", workdir, "--in", str(tmp_path / "big.png"),
                            "--out", str(tmp_path / "x.png")), "4×4×1", "upscales 2×2×1")
  assert_one_line_error(cli("sample", "--workdir", workdir, "--out", str(tmp_path / "s.png")),
                        "jaxgen upscale")
  gan = config_lib.load("experiments/dcgan_fashion_mnist.py:small", {})
  with pytest.raises(UserError, match="not a super-resolution model"):
    inference.upscale_uint8(gan, None, None, None, np.zeros((1, 7, 7, 1), np.uint8), 0)


# Slow: the streamed statistics and their comparison are the fast tier's (test_sample_quality,
# every family); the fast tier's SR tests check upscaling through eval_metrics and the CLI.
@pytest.mark.slow
def test_sample_metrics_score_the_upscaled_split_beside_the_baseline(feature_network, data_dir):
  """FID of an SR model is over its upscalings of the first num_samples degraded images of
  the split, and baseline_fid over their bicubic upsamplings: exactly image_statistics of
  those images."""
  from jaxgen import config as config_lib, families, images, sharding, train
  from jaxgen.evaluators import features
  from jaxgen.evaluators.sample_quality import SampleQualityEvaluator, compare, image_statistics
  from tests.helpers import init_state
  config = config_lib.load("experiments/sr3_fashion_mnist.py:small", {
      "data.data_dir": data_dir, "data.eval_split": "test[:40]", "model.multipliers": "(1,)",
      "sampling.steps": "2", "evaluation.sample_metrics": "True",
      "evaluation.num_samples": "24", "evaluation.feature_network": "fashion_mnist_small",
      "evaluation.features_dir": feature_network[0], "eval_batch_size": "16"})
  family = families.get(config.family)
  source = train.load_data(config, family, config.data.eval_split)
  mesh = sharding.create_mesh(config.mesh)
  evaluator = SampleQualityEvaluator(config, family, mesh, source)
  with jax.set_mesh(mesh):
    scores = dict(evaluator.run(init_state(family, config)))
  assert scores["eval/sample_metrics/num_samples"] == 24
  assert np.isfinite(scores["eval/fid"]) and scores["eval/fid"] != scores["eval/baseline_fid"]
  sr = superres.options(config)
  first = jnp.asarray(source.images[:24] / 127.5 - 1, jnp.float32)
  # The evaluator's degradation key for each batch of 16: noise 0 makes the key irrelevant.
  low = superres.low_resolution(sr, first, jax.random.PRNGKey(0))
  bicubic = images.to_uint8(np.asarray(superres.upsample(sr, low, (28, 28, 1))), "symmetric")
  features_fn, _ = features.load("fashion_mnist_small", feature_network[0])
  expected = compare(evaluator.reference, image_statistics(bicubic, features_fn, 10_000),
                     config.evaluation, config.seed)
  # To rounding: the evaluator resizes sharded batches of 16, this test all 24 at once.
  np.testing.assert_allclose(scores["eval/baseline_fid"], expected["fid"], rtol=1e-3)


def test_a_bad_model_config_writes_no_workdir(tmp_path, data_dir, cli):
  from tests.test_cli import assert_one_line_error
  workdir = tmp_path / "run"
  assert_one_line_error(cli("train", "--config", "experiments/sr3_fashion_mnist.py:small",
                            "--workdir", str(workdir), f"--config.data.data_dir={data_dir}",
                            "--config.superres.factor=3"), "superres.factor=3",
                        "pick a factor that divides both")
  assert not workdir.exists()
