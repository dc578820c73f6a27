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


def ema_update(ema: PyTree, params: PyTree, decay: float) -> PyTree:
  """ema ← decay·ema + (1−decay)·params; returns {} untouched when EMA is off."""
  if not ema:
    return ema
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(e.dtype), ema, params)


def init_ema(params: PyTree, decay: float) -> PyTree:
  return jax.tree.map(jnp.copy, params) if decay > 0 else {}


def sampling_params(state: TrainState) -> PyTree:
  """The parameters to sample and evaluate with: EMA when kept, else the live ones."""
  return state.ema_params if state.ema_params else state.params
