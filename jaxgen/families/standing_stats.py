"""A generator's BatchNorm statistics measured on its own samples: BigGAN's "standing
statistics".

Training keeps running averages of the raw weights' batch statistics, and the EMA weights
that are sampled differ from the raw ones. This measures the sampled weights' own statistics
instead (`sampling.batch_stats='standing'`). It did not pay on jaxgen's 5-epoch DCGAN: FID
was 0.1–1.1 worse than the running averages on two of three seeds and 0.5 better on the
third, EMA and raw weights alike (benchmarks/README.md), so 'running' is the default.
"""

import jax
import jax.numpy as jnp

from jaxgen.models import gan_parts


def _is_batch_norm(path) -> bool:
  return jax.tree_util.keystr(path[-1:]) in ("['mean']", "['var']")


def measure(generator, params, stats, z, labels):
  """`stats` with each BatchNorm layer's running mean and variance replaced by the batch mean
  and (biased) variance of `params`' train-mode pass over latents `z` (and `labels`).

  Flax's train-mode pass returns momentum·old + (1 − momentum)·batch, so starting from zeros
  the batch statistics are that over (1 − momentum). Other state in the collection (spectral
  norm's power-iteration vectors) stays as it was.
  """
  zeros = jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.zeros_like(s) if _is_batch_norm(path) else s, stats)
  _, updates = generator.apply({"params": params, "batch_stats": zeros}, z, labels,
                               train=True, mutable=["batch_stats"])
  momentum = gan_parts.BATCH_NORM_MOMENTUM
  return jax.tree_util.tree_map_with_path(
      lambda path, s, new: new / (1.0 - momentum) if _is_batch_norm(path) else s, stats,
      updates["batch_stats"])
