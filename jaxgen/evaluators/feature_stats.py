"""Streaming feature mean/covariance and the Fréchet distance between two Gaussians (FID).

Statistics stream batch by batch, so no more than one batch of feature vectors is ever held.
Numerics: each batch is reduced on device in float32 but *centred on its own mean*, so the
per-batch second moment has the scale of the variance, not of mean² + variance; the host
merges batches in float64 with Chan et al.'s pairwise update. The naive route
(Σxxᵀ − N·μμᵀ) loses about log10(1 + μ²/σ²) digits to cancellation, which float32 cannot
spare.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import UserError


def init_stats(dim: int) -> dict:
  """Empty float64 host statistics for `dim`-dimensional features.

  `outer` holds the centred second moment Σ(x − mean)(x − mean)ᵀ, not the raw Σxxᵀ.
  """
  if dim < 1:
    raise UserError(f"feature dim={dim}: expected a positive feature dimension")
  return dict(count=0.0, sum=np.zeros([dim]), outer=np.zeros([dim, dim]))


def batch_sums(features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One batch's (count, sum [d], centred outer [d, d]) over the rows where `mask` is true.

  Jittable; on a batch sharded over 'data' the reductions become cross-device sums.

  Args:
    features: [batch, d], any float dtype; masked-out rows may hold anything, even NaN.
    mask: [batch], bool or 0/1.
  """
  keep = mask.astype(bool)[:, None]
  # `where`, not a multiply: 0 · NaN in a padding row would still poison the sums.
  x = jnp.where(keep, features.astype(jnp.float32), 0.0)
  count = jnp.sum(keep, dtype=jnp.float32)
  total = jnp.sum(x, axis=0)
  centred = jnp.where(keep, x - total / jnp.maximum(count, 1.0), 0.0)
  # HIGHEST: GPUs (TF32) and TPUs (bf16 passes) otherwise round float32 matmul inputs.
  outer = jnp.einsum("bi,bj->ij", centred, centred, precision=jax.lax.Precision.HIGHEST)
  return count, total, outer


def accumulate(stats: dict, sums) -> dict:
  """Merges one batch's `batch_sums` output into host `stats` (a new dict, float64)."""
  count, total, outer = (np.asarray(jax.device_get(v), np.float64) for v in sums)
  count = float(count)
  if count == 0.0:
    return stats
  n = stats["count"] + count
  # Chan et al.: the centred moments add, plus a term for the distance between the two means.
  delta = total / count - stats["sum"] / max(stats["count"], 1.0)
  shift = np.outer(delta, delta) * (stats["count"] * count / n)
  return dict(count=n, sum=stats["sum"] + total, outer=stats["outer"] + outer + shift)


def mean_cov(stats: dict) -> tuple[np.ndarray, np.ndarray]:
  """The mean [d] and unbiased (N − 1) covariance [d, d] of everything accumulated."""
  n = stats["count"]
  if n < 2:
    raise UserError(f"{n:.0f} feature vectors accumulated: a covariance needs at least 2; "
                    "evaluate on more examples")
  return stats["sum"] / n, stats["outer"] / (n - 1.0)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
  """‖μ1 − μ2‖² + Tr(C1 + C2 − 2 (C1 C2)^½), in float64.

  (C1 C2)^½ is similar to the symmetric PSD matrix C1^½ C2 C1^½, so the trace of the former
  is Σ√λ over the latter's eigenvalues: a symmetric eigenproblem, with no complex parts or
  failed iterations as in `scipy.linalg.sqrtm` of a non-symmetric product.
  """
  mu1, cov1, mu2, cov2 = _checked_gaussians(mu1, cov1, mu2, cov2)
  root1 = _psd_sqrt(cov1)
  product = root1 @ cov2 @ root1
  # Round-off makes eigenvalues of a singular PSD matrix slightly negative; they are zeros.
  eigenvalues = np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)
  trace_sqrt = np.sum(np.sqrt(eigenvalues))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
  """The symmetric square root [d, d] of a symmetric PSD matrix, via its eigendecomposition."""
  eigenvalues, vectors = np.linalg.eigh((cov + cov.T) / 2)
  return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def _checked_gaussians(mu1, cov1, mu2, cov2):
  mu1, cov1, mu2, cov2 = (np.asarray(a, np.float64) for a in (mu1, cov1, mu2, cov2))
  d = mu1.shape[0] if mu1.ndim == 1 else None
  for name, value, shape in (("mu1", mu1, (d,)), ("cov1", cov1, (d, d)),
                             ("mu2", mu2, (d,)), ("cov2", cov2, (d, d))):
    if d is None or value.shape != shape:
      raise UserError(f"{name} has shape {value.shape}: expected means [d] and covariances "
                      "[d, d] with one d; pass `mean_cov` outputs of same-size features")
    if not np.all(np.isfinite(value)):
      raise UserError(f"{name} holds non-finite values: expected finite feature statistics; "
                      "check the feature extractor's outputs")
  return mu1, cov1, mu2, cov2
