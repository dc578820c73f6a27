"""Damaged checkpoints are skipped (and moved aside by training), failed saves are one-line
errors that leave the earlier checkpoints intact.

Orbax raises different exceptions for different damage (measured: a truncated data file is
a ValueError from TensorStore, deleted data files a bare Exception, a truncated _METADATA a
JSONDecodeError), hence the broad catches in `jaxgen.checkpoint`.
"""

import contextlib
import glob
import os
import re
import subprocess

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgen import checkpoint, inference, train
from jaxgen.errors import UserError
from tests.helpers import final_params, read_metrics, small_config

VAE = "experiments/vae_fashion_mnist.py"


def _config(data_dir, total_steps, **overrides):
  return small_config(VAE, data_dir, total_steps=total_steps, checkpoint_every=1,
                      keep_checkpoints=5, **overrides)


def _truncate_data(step_dir):
  for path in glob.glob(os.path.join(step_dir, "**", "d", "*"), recursive=True):
    with open(path, "r+b") as f:
      f.truncate(8)


def _delete_data(step_dir):
  for path in glob.glob(os.path.join(step_dir, "**", "d", "*"), recursive=True):
    os.remove(path)


def test_a_damaged_newest_checkpoint_is_skipped_on_resume_sample_and_evaluate(data_dir,
                                                                             tmp_path):
  straight, damaged = str(tmp_path / "straight"), str(tmp_path / "damaged")
  train.train_and_evaluate(_config(data_dir, 4), straight)
  train.train_and_evaluate(_config(data_dir, 3), damaged)
  _truncate_data(os.path.join(damaged, "checkpoints", "3"))  # A kill during its save.
  # Resumes from step 2, moves step 3 aside, and is the uninterrupted run bit for bit.
  train.train_and_evaluate(_config(data_dir, 4), damaged)
  assert [r["step"] for r in read_metrics(damaged)] == [1, 2, 3, 3, 4]
  assert [n.split("-")[0] for n in os.listdir(os.path.join(damaged, "damaged_checkpoints"))
          ] == ["3"]
  jax.tree.map(np.testing.assert_array_equal, final_params(straight), final_params(damaged))
  # `jaxgen sample` / `evaluate` read the newest that restores, and move nothing.
  _delete_data(os.path.join(damaged, "checkpoints", "4"))
  _, _, _, state = inference.restore(damaged)
  assert int(state.step) == 3 and os.path.isdir(os.path.join(damaged, "checkpoints", "4"))
  for step in (1, 2, 3):
    _delete_data(os.path.join(damaged, "checkpoints", str(step)))
  with pytest.raises(UserError, match=r"none of the checkpoints .* restores; the newest, step 4"):
    inference.restore(damaged)


@contextlib.contextmanager
def _small_filesystem(path, size_kib):
  """A tmpfs of SIZE_KIB at PATH where this user may mount one (root), else None."""
  os.makedirs(path)
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs",
                            str(path)], capture_output=True).returncode == 0
  try:
    yield path if mounted else None
  finally:
    if mounted:
      subprocess.run(["umount", "-l", str(path)], check=True)


def _fail_saves_after(monkeypatch, count, error):
  """The fault-injecting path where no filesystem can be mounted: the manager's save raises
  `error` after `count` saves."""
  save, calls = ocp.CheckpointManager.save, []

  def failing(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > count:
      raise error
    return save(self, *args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "save", failing)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_failed_save_is_one_line_and_keeps_the_earlier_checkpoints(fault, data_dir,
                                                                      tmp_path, monkeypatch,
                                                                      cli):
  """A full disk or a folder turned read-only mid-run: `jaxgen train` stops with one line
  naming the step and the intact one to resume from (exit code 2, no traceback from
  orbax's threads); the earlier checkpoints restore."""
  workdir = str(tmp_path / "run")
  # One checkpoint of this VAE takes 4 MiB on disk (du -sk: 4080): room for one, so the
  # second save (step 2) fails.
  with _small_filesystem(tmp_path / "fs", 5 * 1024) as fs:
    if fs is None:
      _fail_saves_after(monkeypatch, 2, OSError(28, "No space left on device") if
                        fault == "full" else PermissionError(13, "Permission denied"))
    else:
      os.makedirs(workdir)
      os.symlink(fs, os.path.join(workdir, "checkpoints"))
      if fault == "read-only":
        _remount_read_only_after(monkeypatch, 2, fs)
    result = cli("train", "--config", VAE + ":small", "--workdir", workdir,
                 f"--config.data.data_dir={data_dir}", "--config.total_steps=6",
                 "--config.checkpoint_every=1", "--config.keep_checkpoints=5",
                 "--config.max_inflight_steps=0", "--config.sample_every=0")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert re.match(r"jaxgen: error: saving (the|a) checkpoint.* failed .*resume from step "
                    r"[12] \(intact\)", result.stderr.strip().splitlines()[-1]), result.stderr
    mngr = checkpoint.manager(workdir, 5, async_save=False)
    steps = mngr.all_steps()
    assert steps and max(steps) <= 2, steps
    _, _, _, state = train.restore_run(workdir)
    assert int(state.step) == max(steps)
    mngr.close()


def _remount_read_only_after(monkeypatch, count, fs):
  """Remounts the filesystem FS read-only once `count` saves have finished."""
  save, calls = ocp.CheckpointManager.save, []

  def then_read_only(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == count + 1:
      self.wait_until_finished()
      subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    return save(self, *args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "save", then_read_only)
