"""Orbax checkpoints of the TrainState in WORKDIR/checkpoints, with the config beside them."""

import os
import shutil
import time

import jax
import orbax.checkpoint as ocp
from absl import logging

from jaxgen import config as config_lib, files
from jaxgen.errors import UserError


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
  """Starts an (async) save of `state` at its own step; a no-op if that step is saved. A
  failed save (this one, or an earlier async one surfacing now) is a UserError."""
  step = int(jax.device_get(state.step))
  if step in mngr.all_steps():
    return
  try:
    mngr.save(step, args=ocp.args.StandardSave(state), force=force)
  except Exception as error:  # Orbax and TensorStore raise ValueError, OSError, Exception.
    raise _save_error(mngr, step, error) from error


def wait(mngr: ocp.CheckpointManager) -> None:
  """Waits for pending async saves; one that failed (disk full, permissions) is a UserError."""
  try:
    mngr.wait_until_finished()
  except Exception as error:
    raise _save_error(mngr, None, error) from error


def _save_error(mngr, step, error) -> UserError:
  # Orbax writes into STEP.orbax-checkpoint-tmp and renames only when complete: a failed save
  # leaves the finished steps as they were (a leftover tmp folder is ignored on resume).
  intact = sorted(s for s in mngr.all_steps() if s != step)
  what = f"the checkpoint of step {step}" if step is not None else "a checkpoint"
  return UserError(f"saving {what} in {mngr.directory} failed ({_reason(error)}): free disk "
                   "space or fix the folder's permissions, then rerun the same command to "
                   + (f"resume from step {intact[-1]} (intact)" if intact else "start again"))


def _reason(error: Exception) -> str:
  """The informative end of a long TensorStore message ('... No space left on device')."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return text if len(text) <= 160 else "..." + text[-157:]


def restore_or_init(mngr: ocp.CheckpointManager, abstract_state, init_fn,
                    move_damaged: bool = False):
  """The newest checkpoint that restores, with `abstract_state`'s shardings, else
  `init_fn()` when there is none.

  A newer checkpoint that fails to restore (truncated or missing files after a kill during
  a save, a bad disk) is skipped with a warning naming its step; with `move_damaged` (the
  training loop, which will save that step again) it is moved to WORKDIR/damaged_checkpoints
  once an older one has restored. If none restores, nothing is moved and the UserError
  names the newest one's error: the cause may be the config (a changed model) rather than
  the files.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  if not steps:
    return init_fn()
  damaged = []
  for step in steps:
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except Exception as error:  # Which type depends on the damage: see tests/test_checkpoint.
      logging.warning("checkpoint of step %d in %s does not restore (%s): trying the one "
                      "before", step, mngr.directory, _reason(error))
      damaged.append((step, error))
      continue
    if damaged:
      logging.warning("resumed from step %d, skipping damaged step(s) %s", step,
                      ", ".join(str(s) for s, _ in damaged))
      if move_damaged:
        _move_aside(mngr, [s for s, _ in damaged])
    return state
  newest, error = damaged[0]
  raise UserError(f"none of the checkpoints in {mngr.directory} (steps "
                  f"{', '.join(map(str, sorted(steps)))}) restores; the newest, step {newest}: "
                  f"{_reason(error)}. If the model's config changed, train into a new workdir "
                  "(or use init_from)")


def _move_aside(mngr, steps) -> None:
  """Moves damaged step folders out of the manager's sight, keeping them for inspection:
  the loop saves those steps again, and orbax would not overwrite an existing one."""
  if jax.process_index() == 0:
    aside = os.path.join(os.path.dirname(str(mngr.directory)), "damaged_checkpoints")
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      target = os.path.join(aside, f"{step}-{int(time.time())}")
      shutil.move(os.path.join(str(mngr.directory), str(step)), target)
      logging.warning("moved the damaged checkpoint of step %d to %s", step, target)
  mngr.reload()


config_path = config_lib.run_config_path


def write_config(workdir: str, config) -> None:
  """Writes the run's config atomically (a crash never leaves half a file)."""
  with files.atomic_write(config_path(workdir)) as tmp, open(tmp, "w") as f:
    f.write(config_lib.to_json(config))


def read_config(workdir: str):
  with open(config_path(workdir)) as f:
    return config_lib.from_json(f.read())
