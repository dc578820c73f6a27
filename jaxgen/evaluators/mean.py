"""Means of a family's per-example metrics over a whole split, padded batches masked out."""

import functools
import sys
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import families, sharding
from jaxgen.data import input_pipeline


class MeanEvaluator:
  """Streams a split once per run; the per-batch function is jitted once (no recompiles)."""

  def __init__(self, config, family, mesh, source, prefix: str = "eval/"):
    self.config, self.mesh, self.source, self.prefix = config, mesh, source, prefix
    self.provenance = {**family.provenance(config), **families.sampling_provenance(config)}
    self.local_batch = config.eval_batch_size // jax.process_count()
    self._sums = jax.jit(functools.partial(_masked_sums, config, family),
                         out_shardings=sharding.replicated(mesh))

  def run(self, state) -> Iterator[tuple[str, float]]:
    dataset = input_pipeline.eval_dataset(self.config.data, self.source,
                                          local_batch_size=self.local_batch)
    base = jax.random.PRNGKey(self.config.seed + 1)  # Fixed: every evaluation sees the same noise.
    totals, count, start = {}, 0.0, time.perf_counter()
    for i, batch in enumerate(input_pipeline.global_batches(dataset, self.mesh)):
      sums, n = self._sums(state, batch, jax.random.fold_in(base, i))
      sums, n = jax.device_get((sums, n))
      for name, value in sums.items():
        totals[name] = totals.get(name, 0.0) + float(value)
      count += float(n)
      if jax.process_index() == 0 and (i + 1) % 10 == 0:  # IWAE-1000 takes minutes.
        print(f"evaluating {self.source.name}/{self.source.split}: {count:.0f} examples, "
              f"{count / (time.perf_counter() - start):,.0f} examples/s", file=sys.stderr,
              flush=True)
    for name, total in sorted(totals.items()):
      yield self.prefix + name, total / max(count, 1.0)
    yield self.prefix + "num_examples", count
    yield self.prefix + "split", f"{self.source.name}/{self.source.split}"
    for name, value in sorted(self.provenance.items()):
      yield self.prefix + "provenance/" + name, value


def _masked_sums(config, family, state, batch, rng):
  values = family.eval_metrics(config, state, batch, rng)
  mask = batch["mask"].astype(jnp.float32)
  return {k: jnp.sum(v.astype(jnp.float32) * mask) for k, v in values.items()}, jnp.sum(mask)
