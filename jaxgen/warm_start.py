"""A fresh run that starts from other runs' arrays: config.init_from (a run of the same
family: its parameters and model state) and config.<family>.autoencoder_from of latent
diffusion and the VQ-VAE prior (a VQ-VAE run: the frozen autoencoder, `jaxgen.latents`).

Both are vetted by `check` before anything is written, abstractly (configs and shapes, no
arrays loaded), and carried into the state at step 0 by the `carry_*` functions; a resumed
run reads neither source again.
"""

import functools

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxgen import checkpoint, config as config_lib, families, latents, train_state
from jaxgen.errors import UserError


def init_fn(config, family=None):
  """rng -> a fresh TrainState for this config (unjitted, unsharded)."""
  family = family or families.get(config.family)
  return functools.partial(family.init_state, config, image_shape=family.image_shape(config))


def run_config(workdir: str):
  """The config a run in WORKDIR saved, every sampling knob of its family filled in."""
  config_lib.require_run(workdir)
  return families.with_sampling_defaults(checkpoint.read_config(workdir))


def check(config, workdir: str) -> list[str]:
  """Fails if config.init_from (`_check_init_from`) or <family>.autoencoder_from
  (`_check_autoencoder`) cannot start this run; else the arrays this model adds to
  init_from's, which keep their initialisation. Nothing to check once WORKDIR has its own
  checkpoint: resuming reads neither."""
  if checkpoint.has_checkpoint(workdir):
    return []
  if latents.autoencoder(config):
    _check_autoencoder(config)
  return _check_init_from(config) if config.get("init_from") else []


def _source_config(source: str, knob: str):
  """The config of the run at `source`, a UserError unless it has a checkpoint."""
  source_config = run_config(source)
  if not checkpoint.has_checkpoint(source):
    raise UserError(f"{knob}={source!r} has no checkpoint yet: let that run reach "
                    "checkpoint_every steps (or finish) first")
  return source_config


def _abstract_state(config):
  return jax.eval_shape(init_fn(config), jax.random.PRNGKey(0))


def _check_init_from(config) -> list[str]:
  """A UserError unless config.init_from is a run of this family with a checkpoint whose
  parameters (and model state) all reappear here with the same shapes; the names of the
  arrays only this model has."""
  source = config.init_from
  source_config = _source_config(source, "init_from")
  if source_config.family != config.family:
    raise UserError(f"init_from={source!r} is a {source_config.family} run, this is a "
                    f"{config.family} run: start from a run of the same family")
  there, here = _abstract_state(source_config), _abstract_state(config)
  return [new for name in ("params", "model_state")
          for new in _check_fits("init_from", source, name, getattr(there, name),
                                 getattr(here, name))]


def _check_autoencoder(config) -> None:
  """A UserError unless <family>.autoencoder_from is a run with a checkpoint that trained
  the model <family>.autoencoder names, its variables shaped as this state's."""
  source, knob = latents.source(config), latents.knob(config)
  if not source:
    raise UserError(f"{latents.knob(config, 'autoencoder')} is set but {knob} is empty: pass "
                    f"--config.{knob}=DIR, the workdir of a VQ-VAE run")
  source_config = _source_config(source, knob)
  latents.check_source(config, source_config, source)
  there = _abstract_state(source_config)
  here = _abstract_state(config).model_state[latents.KEY]
  _check_fits(knob, source, "autoencoder",
              {"params": there.params, **there.model_state}, here)


def _check_fits(knob, source, name, loaded, fresh) -> list[str]:
  """A UserError naming the first leaf of `loaded` missing from `fresh` or shaped
  differently there; else the leaves only `fresh` has, as '{name}[...]' strings."""
  shapes = lambda tree: {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf
                         in jax.tree_util.tree_flatten_with_path(tree)[0]}
  have, want = shapes(loaded), shapes(fresh)
  misfits = sorted(k for k in have if have[k] != want.get(k))
  if misfits:
    key = misfits[0]
    raise UserError(f"{knob}={source!r}: its {name} do not fit this model ({name}{key}: "
                    f"{have[key]} there, {want.get(key, 'missing')} here): start from a run "
                    "of the same model and widths (this model may add parts, not drop or "
                    "resize them)")
  return [f"{name}{k}" for k in sorted(want.keys() - have.keys())]


def carry_init_from(fresh, loaded, shardings):
  """A fresh state (step 0, the new config's optimizer and rng) carrying the parameters and
  model state of init_from's state `loaded`; arrays the source lacks (a part this model
  adds, such as a pixel head) keep their initialisation. EMA, when kept, restarts at the
  result.

  The optimizer state stays as `fresh` has it: jaxgen's optimizers (Adam variants) start
  from zeros whatever the parameters, so it fits the carried ones.
  """
  params = jax.device_put(_overlay(fresh.params, loaded.params), shardings.params)
  model_state = jax.device_put(_overlay(fresh.model_state, loaded.model_state),
                               shardings.model_state)
  ema = jax.tree.map(jnp.copy, params) if fresh.ema_params else fresh.ema_params
  return fresh.replace(params=params, ema_params=ema, model_state=model_state)


def carry_autoencoder(fresh, source, shardings):
  """`fresh` with model_state['autoencoder'] what the autoencoder run's state `source`
  samples with: its EMA weights when kept, and its codebook."""
  variables = {"params": train_state.sampling_params(source), **source.model_state}
  model_state = jax.device_put({**fresh.model_state, latents.KEY: variables},
                               shardings.model_state)
  return fresh.replace(model_state=model_state)


def _overlay(fresh, loaded):
  """The nested dict `fresh` with every array `loaded` has replaced by loaded's."""
  flat = traverse_util.flatten_dict(fresh)
  flat.update(traverse_util.flatten_dict(loaded))
  return traverse_util.unflatten_dict(flat)
