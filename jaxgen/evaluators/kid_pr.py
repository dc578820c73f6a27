"""KID and k-NN precision/recall: host numpy metrics on stored feature vectors.

Unlike FID these need the features themselves, not streamed moments, so their memory is
[n, d] per set: the caller bounds it by capping how many feature vectors it stores (e.g. the
first 10k of each set). Everything here runs in float64.
"""

import numpy as np

from jaxgen.errors import UserError


def kid(real, fake, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """Kernel Inception Distance: (mean, standard error) of unbiased MMD² over random subsets.

  Kernel k(x, y) = (xᵀy / d + 1)³ (Bińkowski et al. 2018). Each subset draws `subset_size`
  rows of each set without replacement, clipped to the smaller set; the standard error treats
  subsets as independent, which overlapping subsets are not, so it is a rough guide.

  Args:
    real: [n_real, d] features.
    fake: [n_fake, d] features.
  """
  real, fake = _checked_features(real, fake)
  m = min(subset_size, len(real), len(fake))
  if m < 2 or num_subsets < 2:
    raise UserError(f"KID with subset_size={m} (after clipping to the {len(real)} real and "
                    f"{len(fake)} fake features) and num_subsets={num_subsets}: expected both "
                    ">= 2; store more features or raise the settings")
  rng = np.random.default_rng(seed)
  estimates = [_mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                              fake[rng.choice(len(fake), m, replace=False)])
               for _ in range(num_subsets)]
  return float(np.mean(estimates)), float(np.std(estimates, ddof=1) / np.sqrt(num_subsets))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD² of two [m, d] samples: the within-set means skip the k(x, x) diagonal."""
  m, d = x.shape
  k_xx = (x @ x.T / d + 1.0) ** 3
  k_yy = (y @ y.T / d + 1.0) ** 3
  k_xy = (x @ y.T / d + 1.0) ** 3
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return within - 2.0 * k_xy.mean()


def precision_recall(real, fake, k: int = 3, batch_size: int = 1024) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) as (precision, recall).

  Each real feature owns a ball reaching its k-th nearest other real feature; precision is the
  fraction of fakes inside at least one real ball. Recall swaps the roles, with fake balls
  sized among the fakes. Distances are computed `batch_size` rows at a time, so memory is
  O(batch_size · n) rather than O(n²).

  Args:
    real: [n_real, d] features.
    fake: [n_fake, d] features.
  """
  real, fake = _checked_features(real, fake)
  if k < 1 or min(len(real), len(fake)) <= k:
    raise UserError(f"precision/recall with k={k} on {len(real)} real and {len(fake)} fake "
                    "features: expected 1 <= k < both counts; store more features or lower k")
  if batch_size < 1:
    raise UserError(f"batch_size={batch_size}: expected a positive number of rows")
  precision = _fraction_covered(fake, real, _kth_neighbour_sq(real, k, batch_size), batch_size)
  recall = _fraction_covered(real, fake, _kth_neighbour_sq(fake, k, batch_size), batch_size)
  return precision, recall


def _kth_neighbour_sq(points: np.ndarray, k: int, batch_size: int) -> np.ndarray:
  """[n] squared distance from each point to its k-th nearest other point."""
  # Index k of the sorted row, not k - 1: index 0 is the point's zero distance to itself.
  return np.concatenate([np.partition(sq, k, axis=1)[:, k]
                         for sq in _sq_distances(points, points, batch_size)])


def _fraction_covered(queries: np.ndarray, centres: np.ndarray, radii_sq: np.ndarray,
                      batch_size: int) -> float:
  """Fraction of `queries` [n, d] inside at least one ball (`centres` [m, d], `radii_sq` [m])."""
  inside = [np.any(sq <= radii_sq, axis=1) for sq in _sq_distances(queries, centres, batch_size)]
  return float(np.mean(np.concatenate(inside)))


def _sq_distances(a: np.ndarray, b: np.ndarray, batch_size: int):
  """Yields [batch, len(b)] squared distances for successive row batches of `a`."""
  b_sq = np.sum(b * b, axis=1)
  for start in range(0, len(a), batch_size):
    rows = a[start:start + batch_size]
    sq = np.sum(rows * rows, axis=1)[:, None] - 2.0 * rows @ b.T + b_sq
    # The expansion can dip below zero by round-off where the true distance is zero.
    yield np.maximum(sq, 0.0)


def _checked_features(real, fake) -> tuple[np.ndarray, np.ndarray]:
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  for name, value in (("real", real), ("fake", fake)):
    if value.ndim != 2 or value.shape[1:] != real.shape[1:]:
      raise UserError(f"{name} features have shape {value.shape}: expected [n, d] with the "
                      f"same d for real and fake ({real.shape} vs {fake.shape})")
    if not np.all(np.isfinite(value)):
      raise UserError(f"{name} features hold non-finite values: expected finite vectors; "
                      "check the feature extractor's outputs")
  return real, fake
