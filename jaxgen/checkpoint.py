"""Orbax checkpoints of the TrainState in WORKDIR/checkpoints, with the config beside them."""

import os

import jax
import orbax.checkpoint as ocp

from jaxgen import config as config_lib, files


def manager(workdir: str, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=options)


def has_checkpoint(workdir: str) -> bool:
  """Whether WORKDIR holds a saved step, judged from the folder alone (no manager opened)."""
  folder = os.path.join(workdir, "checkpoints")
  return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))


def save(mngr: ocp.CheckpointManager, state, force: bool = False) -> None:
  """Starts an (async) save of `state` at its own step; a no-op if that step is saved."""
  step = int(jax.device_get(state.step))
  if step in mngr.all_steps():
    return
  mngr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore_or_init(mngr: ocp.CheckpointManager, abstract_state, init_fn):
  """The latest checkpoint restored with `abstract_state`'s shardings, else `init_fn()`."""
  step = mngr.latest_step()
  if step is None:
    return init_fn()
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))


def config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def write_config(workdir: str, config) -> None:
  """Writes the run's config atomically (a crash never leaves half a file)."""
  with files.atomic_write(config_path(workdir)) as tmp, open(tmp, "w") as f:
    f.write(config_lib.to_json(config))


def read_config(workdir: str):
  with open(config_path(workdir)) as f:
    return config_lib.from_json(f.read())
