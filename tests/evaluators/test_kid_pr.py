"""KID and k-NN precision/recall on synthetic features with known answers."""

import numpy as np
import pytest
import scipy.spatial.distance

from jaxgen.errors import UserError
from jaxgen.evaluators import kid_pr


def _gaussian(seed, count, dim, shift=0.0):
  return np.random.default_rng(seed).normal(size=(count, dim)) + shift


def _two_modes(seed, count, dim):
  """[count, dim]: half the rows around the origin, half 10 units away along axis 0."""
  points = _gaussian(seed, count, dim)
  points[:count // 2, 0] += 10.0
  return points


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
  real, same, shifted = _gaussian(0, 2000, 16), _gaussian(1, 2000, 16), _gaussian(2, 2000, 16, 0.3)
  # Subsets much smaller than the sets, so the overlap between them barely shrinks the SE.
  mean, se = kid_pr.kid(real, same, num_subsets=20, subset_size=100)
  assert abs(mean) < 3 * se
  mean, se = kid_pr.kid(real, shifted, num_subsets=20, subset_size=100)
  assert mean > 10 * se > 0


def test_kid_is_unbiased_over_fresh_samples():
  estimates = [kid_pr.kid(_gaussian(2 * s, 60, 8), _gaussian(2 * s + 1, 60, 8),
                          num_subsets=2, seed=s)[0] for s in range(40)]
  se = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
  # Keeping the k(x, x) diagonal would bias this setting by about +0.27: the test can see it.
  assert abs(np.mean(estimates)) < 3 * se < 0.05


def test_kid_matches_the_u_statistic_written_out():
  x, y = _gaussian(3, 12, 3), _gaussian(4, 12, 3, 0.5)
  k = lambda a, b: (a @ b / 3 + 1) ** 3
  m = len(x)
  within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  expected = within / (m * (m - 1)) - 2 * across / m**2
  # Subsets as large as the sets are permutations of them: every estimate is the same.
  mean, se = kid_pr.kid(x, y, num_subsets=3, subset_size=1000)
  assert mean == pytest.approx(expected, rel=1e-12)
  assert se == pytest.approx(0.0, abs=1e-12)


def test_kid_is_deterministic_given_a_seed():
  x, y = _gaussian(5, 300, 8), _gaussian(6, 300, 8)
  run = lambda seed: kid_pr.kid(x, y, num_subsets=5, subset_size=50, seed=seed)
  assert run(0) == run(0)
  assert run(0) != run(1)


def test_kid_rejects_too_few_features():
  with pytest.raises(UserError, match="subset_size=1"):
    kid_pr.kid(np.zeros((1, 4)), np.zeros((10, 4)))
  with pytest.raises(UserError, match=r"fake features have shape \(10, 5\)"):
    kid_pr.kid(np.zeros((10, 4)), np.zeros((10, 5)))


def test_precision_recall_high_and_balanced_for_one_distribution():
  precision, recall = kid_pr.precision_recall(_gaussian(7, 1000, 4), _gaussian(8, 1000, 4))
  assert precision > 0.85 and recall > 0.85
  assert abs(precision - recall) < 0.05


def test_mode_collapse_keeps_precision_but_loses_recall():
  real, fake = _two_modes(9, 1000, 4), _gaussian(10, 1000, 4)
  precision, recall = kid_pr.precision_recall(real, fake)
  assert precision > 0.85
  assert recall < 0.55


def _precision_recall_full_matrix(real, fake, k):
  """The whole distance matrices at once: the definition, without batching."""
  def radii(points):
    return np.sort(scipy.spatial.distance.cdist(points, points), axis=1)[:, k]
  precision = np.any(scipy.spatial.distance.cdist(fake, real) <= radii(real), axis=1).mean()
  recall = np.any(scipy.spatial.distance.cdist(real, fake) <= radii(fake), axis=1).mean()
  return precision, recall


@pytest.mark.parametrize("batch_size", [7, 1024])
def test_precision_recall_batching_matches_full_matrices(batch_size):
  real, fake = _two_modes(11, 90, 3), _gaussian(12, 70, 3, 0.5)
  expected = _precision_recall_full_matrix(real, fake, k=3)
  assert kid_pr.precision_recall(real, fake, k=3, batch_size=batch_size) == pytest.approx(expected)


def test_precision_recall_rejects_k_not_below_the_counts():
  with pytest.raises(UserError, match="k=3 on 3 real"):
    kid_pr.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
