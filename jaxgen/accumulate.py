"""Gradient accumulation: one optimizer update from k micro-batches, inside the jitted step.

`optim.accumulate_steps = k` splits the global batch into k micro-batches; a `lax.scan`
takes the loss and its gradient on each, so only one micro-batch's activations are alive
at a time, and the update sees their mean: the gradient of the mean loss over the batch.
Micro-batch j holds examples j, j+k, j+2k, …: every device keeps its own examples (the
batch is sharded in contiguous blocks along the data axis), so the split moves no data.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

PyTree = Any


def steps(config) -> int:
  """config.optim.accumulate_steps, 1 for a run saved before the knob existed."""
  return int(config.optim.get("accumulate_steps", 1))


def unrolled(config) -> bool:
  """config.optim.accumulate_unroll (see `value_and_grad`), False where it is missing."""
  return bool(config.optim.get("accumulate_unroll", False))


def check(config, batch_size: int, data_devices: int) -> None:
  """A one-line error unless the batch splits into equal micro-batches over the devices."""
  k = steps(config)
  if k < 1 or batch_size % (k * data_devices):
    raise UserError(f"optim.accumulate_steps={k}: the batch of {batch_size} must split into "
                    f"{k} micro-batches of a multiple of the {data_devices} data-parallel "
                    f"devices; use a batch_size divisible by {max(k, 1) * data_devices}")


def micro_batches(batch: PyTree, k: int) -> PyTree:
  """Each leaf [b, ...] as [k, b / k, ...], micro-batch j = examples j, j+k, j+2k, …"""
  def split(x):
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
  return jax.tree.map(split, batch)


def value_and_grad(loss_fn: Callable, k: int, params: PyTree, batch: PyTree, rng: jax.Array,
                   unroll: bool = False):
  """`jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng)` over k micro-batches.

  loss_fn(params, batch, rng) returns (the batch's mean loss, aux). With k = 1 it is called
  once on the whole batch with `rng`; otherwise micro-batch j gets fold_in(rng, j). The
  loss, the gradients and the floating-point leaves of `aux` (metrics, BatchNorm statistics:
  their moving average is linear in the batch mean) are the means over micro-batches; other
  leaves of `aux` are the last micro-batch's. `unroll` (optim.accumulate_unroll) unrolls
  the scan: on XLA:CPU a rolled scan over convolutions ran 5x slower (a U-Net at batch 128
  in 4 micro-batches: 11.7 s against 1.6 s a step) but kept a quarter of the memory (218
  against 878 MiB; benchmarks/README.md); unrolled, XLA keeps most activations alive.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    return grad_fn(params, batch, rng)

  def body(total, xs):
    micro, j = xs
    out = grad_fn(params, micro, jax.random.fold_in(rng, j))
    return jax.tree.map(_add, total, out), None

  shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro_batches(
      batch, k)), rng)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  total, _ = jax.lax.scan(body, zeros, (micro_batches(batch, k), jnp.arange(k)),
                          unroll=unroll)
  return jax.tree.map(lambda t: t / k if jnp.issubdtype(t.dtype, jnp.inexact) else t, total)


def _add(total, value):
  return total + value if jnp.issubdtype(value.dtype, jnp.inexact) else value
