"""A generator's BatchNorm statistics measured on its own samples: BigGAN's "standing
statistics".

Training keeps running averages of the raw weights' batch statistics; the EMA weights that
are sampled differ from those, and sampling them with the raw weights' averages cost ~3 FID
on jaxgen's DCGAN (issue 17). Measuring the sampled weights' own statistics fixes the
mismatch, and an EMA generator equal to the raw one then samples exactly as the raw does.
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
