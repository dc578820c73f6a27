"""The training state pytree every family uses, and the one way it is created and updated.

A family builds its networks' parameters; `create_state` wraps them with the optimizer
state, the EMA copy and the run's key, and `apply_gradients` is the whole update (in the
spirit of flax's `TrainState.apply_gradients` and vdm's `train_state.py`). A family with
several networks (the GAN) keys params, opt_state, model_state and ema_params by network
name and calls `apply_gradients` once per network.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgen import optim
from jaxgen.errors import UserError

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


def _optim_config(config, network: str | None):
  return config.optim[network] if network else config.optim


def optimizer(config, network: str | None = None) -> optax.GradientTransformation:
  """The optax chain of `network` (config.optim[network]), or of the one network."""
  return optim.create(_optim_config(config, network), config.total_steps)


def create_state(config, params: PyTree, rng: jax.Array, model_state: PyTree | None = None,
                 networks: tuple[str, ...] = (), ema_networks: tuple[str, ...] = ()
                 ) -> TrainState:
  """Step 0 around freshly initialised `params`: each network's optimizer state, the EMA copy
  (when config.ema_decay > 0) and the run's base key `rng`.

  networks=() is one network; otherwise `params` is {network: tree}, each optimised with
  config.optim[network], and only `ema_networks` keep an EMA copy.
  """
  if networks:
    opt_state = {net: optimizer(config, net).init(params[net]) for net in networks}
    ema = ({net: init_ema(params[net], config.ema_decay) for net in ema_networks}
           if config.ema_decay else {})
  else:
    opt_state = optimizer(config).init(params)
    ema = init_ema(params, config.ema_decay)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    model_state={} if model_state is None else model_state, ema_params=ema,
                    rng=rng)


def apply_gradients(config, state: TrainState, grads: PyTree, *, network: str | None = None,
                    model_state: PyTree | None = None, advance: bool = True,
                    loss: jax.Array | None = None) -> tuple[TrainState, dict]:
  """(state after one optimizer update of `network` with `grads`, {'grad_norm',
  'learning_rate', 'skipped'}).

  The network's EMA (if it keeps one) moves with the warm-up of `ema_decay_at`, and
  `model_state` (e.g. new BatchNorm statistics) replaces the network's when given. `advance`
  adds one to the step: a family that updates several networks per iteration advances on
  the last one only; every update of the iteration sees the step the iteration started at.

  An update whose gradients (or `loss`) are not all finite is not applied: parameters,
  optimizer state, EMA and model state stay as they were, decided here in the jitted step
  (no host round-trip), and 'skipped' is 1. The step still advances, so the next step
  draws the next batch and key, and a resumed run stays exact.
  """
  grad_norm = optax.tree.norm(grads)
  # The norm is finite iff every gradient is (a sum of squares that overflows, |g| > 1e19,
  # counts as not finite too): one reduction instead of one per leaf.
  finite = jnp.isfinite(grad_norm) if loss is None else jnp.isfinite(grad_norm) & jnp.all(
      jnp.isfinite(loss))

  def update(state):
    params, opt_state = _network(state.params, network), _network(state.opt_state, network)
    ema = state.ema_params
    updates, opt_state = optimizer(config, network).update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if network is None:
      ema = ema_update(ema, params, config.ema_decay, state.step)
    elif network in ema:
      ema = {**ema, network: ema_update(ema[network], params, config.ema_decay, state.step)}
    new = state.replace(params=_with(state.params, network, params),
                        opt_state=_with(state.opt_state, network, opt_state), ema_params=ema)
    if model_state is not None:
      new = new.replace(model_state=_with(state.model_state, network, model_state))
    return new

  # A cond rather than a select per leaf: the step compiled twice as slowly with selects
  # (the :small U-Net, 32 s against 15 s at XLA:CPU level 0), and a skipped step does no work.
  new = jax.lax.cond(finite, update, lambda state: state, state)
  if advance:
    new = new.replace(step=state.step + 1)
  schedule = optim.schedule(_optim_config(config, network), config.total_steps)
  return new, {"grad_norm": grad_norm, "learning_rate": schedule(state.step),
               "skipped": 1.0 - finite.astype(jnp.float32)}


def unless_skipped(finite: jax.Array, new: PyTree, old: PyTree) -> PyTree:
  """`new` where `finite`, else `old`, leaf by leaf (the two trees shaped alike)."""
  return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)


def _network(tree, network):
  return tree if network is None else tree[network]


def _with(tree, network, value):
  return value if network is None else {**tree, network: value}


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


def sampling_params(state: TrainState, network: str | None = None) -> PyTree:
  """The parameters to sample and evaluate with: EMA when kept, else the live ones."""
  ema = state.ema_params if network is None else state.ema_params.get(network)
  return ema if ema else _network(state.params, network)


def weights_to_sample(state: TrainState, weights: str, network: str | None = None) -> PyTree:
  """The parameters config.sampling.weights names: 'ema' (`sampling_params`) or 'raw', the
  last step's, to compare the two on one checkpoint."""
  if weights not in ("ema", "raw"):
    raise UserError(f"sampling.weights={weights!r}: expected 'ema' or 'raw'")
  return _network(state.params, network) if weights == "raw" else sampling_params(state, network)


def parameters_provenance(config) -> str:
  """Which parameters `sampling_params` hands evaluations: 'ema' or 'raw'."""
  return "ema" if config.ema_decay else "raw"
