"""Streaming feature statistics and the Fréchet distance."""

import jax
import ml_collections
import numpy as np
import pytest
import scipy.linalg

from jaxgen import sharding
from jaxgen.errors import UserError
from jaxgen.evaluators import feature_stats

needs_4 = pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")

DIM, COUNT, BATCH = 64, 5000, 512
_batch_sums = jax.jit(feature_stats.batch_sums)


def _features(seed=0, count=COUNT, dim=DIM):
  """[count, dim] float32 correlated features with means in [1, 10] and scales ~1–10."""
  rng = np.random.default_rng(seed)
  mixing = rng.normal(size=(dim, dim)) * rng.uniform(0.1, 1.0, size=dim) / np.sqrt(dim) * 3
  means = rng.uniform(1.0, 10.0, size=dim)
  return (rng.normal(size=(count, dim)) @ mixing + means).astype(np.float32)


def _padded_batches(features, batch=BATCH):
  """(features [batch, d], mask [batch]) pairs; the last batch's padding holds garbage."""
  for start in range(0, len(features), batch):
    rows = features[start:start + batch]
    pad = batch - len(rows)
    garbage = np.full((pad, features.shape[1]), np.nan, np.float32)
    garbage[::2] = 1e30
    yield np.concatenate([rows, garbage]), np.arange(batch) < len(rows)


def _stream(features, sums_fn=_batch_sums, put=lambda x: x):
  stats = feature_stats.init_stats(features.shape[1])
  for x, mask in _padded_batches(features):
    stats = feature_stats.accumulate(stats, sums_fn(put(x), put(mask)))
  return stats


def _assert_close(actual, expected, rtol):
  """Closeness relative to the largest entry: off-diagonal covariances may be ~0."""
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * np.max(np.abs(expected)))


# The +100 offset makes mean² ≫ variance: an uncentred Σxxᵀ − Nμμᵀ in float32 is off by
# ~1e-4 there (~7e-7 without it); the centred accumulation stays near 6e-8.
@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_streaming_mean_cov_matches_numpy_one_shot(offset):
  features = _features() + np.float32(offset)
  assert COUNT % BATCH, "the last batch must be padded for this test to mean anything"
  stats = _stream(features)
  mean, cov = feature_stats.mean_cov(stats)
  reference = features.astype(np.float64)
  assert stats["count"] == COUNT
  _assert_close(mean, reference.mean(axis=0), 1e-6)
  _assert_close(cov, np.cov(reference, rowvar=False), 1e-6)


def test_fully_masked_batch_changes_nothing():
  features = _features(count=100, dim=4)
  stats = feature_stats.accumulate(feature_stats.init_stats(4),
                                   _batch_sums(features, np.ones(100, bool)))
  empty = _batch_sums(np.full_like(features, np.nan), np.zeros(100, bool))
  after = feature_stats.accumulate(stats, empty)
  for key in stats:
    np.testing.assert_array_equal(after[key], stats[key])


@needs_4
def test_sharded_batches_give_the_same_stats_as_one_device():
  mesh = sharding.create_mesh(ml_collections.ConfigDict(dict(data=4, model=1)))
  batch_sharding = sharding.batch_sharding(mesh)
  features = _features(seed=1, count=2000)
  put = lambda x: jax.device_put(x, batch_sharding)
  assert len(put(features[:BATCH]).addressable_shards) == 4
  sharded = feature_stats.mean_cov(_stream(features, put=put))
  single = feature_stats.mean_cov(_stream(features))
  for a, b in zip(sharded, single):
    _assert_close(a, b, 1e-6)


def test_mean_cov_needs_two_vectors():
  stats = feature_stats.accumulate(feature_stats.init_stats(3),
                                   _batch_sums(np.ones((2, 3)), np.array([True, False])))
  with pytest.raises(UserError, match="1 feature vectors accumulated"):
    feature_stats.mean_cov(stats)


def _random_spd(rng, dim):
  a = rng.normal(size=(dim, dim))
  return a @ a.T / dim + 0.01 * np.eye(dim)


def _fid_via_sqrtm(mu1, cov1, mu2, cov2):
  """The textbook route, for comparison: scipy's general matrix square root of C1 C2."""
  root = scipy.linalg.sqrtm(cov1 @ cov2).real
  return np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * root)


def test_fid_of_identical_stats_is_zero():
  features = _features(seed=2, count=1000)
  mean, cov = np.mean(features, axis=0), np.cov(features, rowvar=False)
  scale = np.trace(cov)
  assert abs(feature_stats.frechet_distance(mean, cov, mean, cov)) < 1e-6 * scale


def test_fid_of_diagonal_gaussians_has_closed_form():
  rng = np.random.default_rng(3)
  a, b = rng.uniform(0.1, 5.0, size=16), rng.uniform(0.1, 5.0, size=16)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
  actual = feature_stats.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_fid_matches_sqrtm_on_random_spd(seed):
  rng = np.random.default_rng(seed)
  mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
  cov1, cov2 = _random_spd(rng, 32), _random_spd(rng, 32)
  expected = _fid_via_sqrtm(mu1, cov1, mu2, cov2)
  assert feature_stats.frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-3)


def test_fid_is_large_for_shifted_distributions():
  features = _features(seed=7, count=4000)
  first, second = features[:2000], features[2000:]
  stats = feature_stats.mean_cov(_stream(first))
  fid_same_distribution = feature_stats.frechet_distance(*stats, *feature_stats.mean_cov(
      _stream(second)))
  fid_shifted = feature_stats.frechet_distance(*stats, *feature_stats.mean_cov(
      _stream(first + 3.0)))
  assert fid_shifted == pytest.approx(9.0 * DIM, rel=1e-5)
  assert fid_shifted > 20 * fid_same_distribution


def test_fid_rejects_mismatched_shapes():
  with pytest.raises(UserError, match=r"cov2 has shape \(3, 3\)"):
    feature_stats.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
