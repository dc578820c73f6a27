"""The training state pytree every family uses, and the EMA arithmetic."""

from typing import Any

import flax
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly.

  For a multi-network family (the GAN) `params`, `opt_state`, `model_state` and `ema_params`
  are dicts keyed by network name. `rng` is the run's base key; the key of step s is
  `fold_in(rng, s)`, so resuming needs nothing but the step.
  """
  step: jax.Array
  params: PyTree
  opt_state: PyTree
  model_state: PyTree  # e.g. BatchNorm statistics; {} when the model has none.
  ema_params: PyTree   # {} when EMA is off.
  rng: jax.Array

  def step_rng(self) -> jax.Array:
    return jax.random.fold_in(self.rng, self.step)


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
  """min(decay, (1+step)/(10+step)): early on the average must not be dominated by the
  random initial weights (with 0.999 they would still weigh 22% after 1500 steps)."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema: PyTree, params: PyTree, decay: float, step: jax.Array) -> PyTree:
  """ema ← d·ema + (1−d)·params with d = ema_decay_at(decay, step); {} when EMA is off."""
  if not ema:
    return ema
  d = ema_decay_at(decay, step)
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p.astype(e.dtype), ema, params)


def init_ema(params: PyTree, decay: float) -> PyTree:
  return jax.tree.map(jnp.copy, params) if decay > 0 else {}


def sampling_params(state: TrainState) -> PyTree:
  """The parameters to sample and evaluate with: EMA when kept, else the live ones."""
  return state.ema_params if state.ema_params else state.params
