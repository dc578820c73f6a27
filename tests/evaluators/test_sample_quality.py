"""Sample metrics in a (tiny, trained-here) feature network: floors, ceilings, devices."""

import jax
import numpy as np
import pytest

from jaxgen import config as config_lib, families, sharding
from jaxgen.data import datasets
from jaxgen.evaluators import features
from jaxgen.evaluators.sample_quality import (SampleQualityEvaluator, compare, image_statistics,
                                             reference_statistics)
from tests import helpers

GAN = "experiments/dcgan_fashion_mnist.py:small"


@pytest.fixture(scope="module")
def setup(feature_network, data_dir):
  """(features root, data_dir, features_fn): the suite's briefly trained classifier."""
  root = feature_network[0]
  features_fn, _ = features.load("fashion_mnist_small", root)
  return root, data_dir, features_fn


def _split(data_dir, split):
  data = config_lib.base_config().data
  data.update(dict(name="fashion_mnist_small", data_dir=data_dir))
  return datasets.load_split(data, split)


def test_real_vs_real_floor_self_zero_and_noise_ceiling(setup):
  _, data_dir, features_fn = setup
  cfg = config_lib.base_config().evaluation
  cfg.update(dict(kid_subsets=20, kid_subset_size=500))
  test = _split(data_dir, "test").images
  train = _split(data_dir, "train").images[:2000]
  noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
  stats = {k: image_statistics(v, features_fn, 2000)
           for k, v in (("test", test), ("train", train), ("noise", noise))}
  real = compare(stats["test"], stats["train"], cfg, seed=0)
  same = compare(stats["test"], stats["test"], cfg, seed=0)
  noisy = compare(stats["test"], stats["noise"], cfg, seed=0)
  scale = np.trace(stats["test"]["cov"])
  assert abs(same["fid"]) < 1e-6 * scale
  assert real["fid"] < 0.1 * noisy["fid"]
  assert real["kid"] < 0.1 * noisy["kid"] and noisy["kid"] > 10 * noisy["kid_standard_error"]
  assert real["precision"] > 0.6 and real["recall"] > 0.6
  assert abs(real["precision"] - real["recall"]) < 0.15
  # Noise covers none of the data. Its *precision* is not low: noise features collapse near
  # one point that a few real outliers' wide k-NN balls contain (measured 0.99) — a known
  # weakness of k-NN precision, so it is not asserted here.
  assert noisy["recall"] < 0.1


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_one_and_four_devices_give_the_same_scores(setup, monkeypatch):
  root, data_dir, _ = setup
  source = _split(data_dir, "test")
  scores = []
  for devices in (1, 4):
    config = config_lib.load(GAN, {"mesh.data": str(devices), "data.data_dir": data_dir,
                                   "evaluation.features_dir": root})
    family = families.get(config.family)
    mesh = sharding.create_mesh(config.mesh)
    state = helpers.init_state(family, config)
    scores.append(dict(SampleQualityEvaluator(config, family, mesh, source).run(state)))
  for key in ("eval/fid", "eval/kid", "eval/precision", "eval/recall"):
    np.testing.assert_allclose(scores[0][key], scores[1][key], rtol=1e-4, atol=1e-6, err_msg=key)
  assert scores[0]["eval/sample_metrics/num_samples"] == 200
  # The classifier's class mix of the samples beside the data's, the same on 1 and 4 devices.
  shares = [scores[0][f"eval/classes/sample_share/{k}"] for k in range(10)]
  np.testing.assert_allclose(sum(shares), 1.0, rtol=1e-6)
  np.testing.assert_allclose(
      sum(scores[0][f"eval/classes/data_share/{k}"] for k in range(10)), 1.0, rtol=1e-6)
  assert 0 <= scores[0]["eval/classes/most_under_represented"] < 10
  assert scores[0]["eval/classes/total_variation"] > 0.0  # An untrained generator is skewed.
  for key in ("eval/classes/most_under_represented", "eval/classes/total_variation"):
    assert scores[0][key] == scores[1][key], key


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_sharded_reference_statistics_equal_one_device_statistics(setup):
  _, data_dir, features_fn = setup
  source = _split(data_dir, "test")  # 2000 images: the last batch of 256 is padded.
  config = config_lib.load(GAN, {"mesh.data": "4", "eval_batch_size": "256",
                                 "evaluation.max_stored_features": "2000"})
  mesh = sharding.create_mesh(config.mesh)
  sharded = reference_statistics(config, mesh, source, features_fn)
  single = image_statistics(source.images, features_fn, 2000)
  assert sharded["count"] == single["count"] == 2000
  np.testing.assert_allclose(sharded["mean"], single["mean"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sharded["cov"], single["cov"], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(sharded["features"], single["features"], rtol=1e-5, atol=1e-5)
