"""Steps whose loss or gradients were not finite: counted on the host, and the run stopped
after too many in a row.

The decision not to apply such a step is taken inside the jitted step
(`train_state.apply_gradients`); each step reports it as the metric 'train/skipped'. The
loop hands this counter each step's metrics once the device has finished that step (it
waits for them anyway to bound the run-ahead), so counting costs no extra round-trip.
"""

import json
import os

import jax
from absl import logging

from jaxgen.errors import UserError

METRIC = "train/skipped"


class SkipCounter:
  """Skipped steps in total (`total`, carried over a resume from metrics.jsonl) and in the
  current streak; `check` raises once the streak reaches `limit`."""

  def __init__(self, limit: int, workdir: str, start: int):
    if not isinstance(limit, int) or limit < 1:
      raise UserError(f"max_consecutive_skips={limit!r}: expected a positive integer (the "
                      "number of non-finite steps in a row after which a run stops)")
    self.limit, self.total, self.streak, self.last_step = limit, _previous_total(workdir,
                                                                                   start), 0, 0

  def observe(self, step: int, metrics: dict) -> None:
    if METRIC not in metrics:
      return
    self.last_step = step
    if float(jax.device_get(metrics[METRIC])) > 0:
      self.total += 1
      self.streak += 1
      logging.warning("step %d: non-finite loss or gradients, update skipped (%d in a row)",
                      step, self.streak)
    else:
      self.streak = 0

  def check(self, last_good_checkpoint: int | None, checkpoint_dir: str) -> None:
    """A UserError naming the step and the last good checkpoint once `limit` steps in a row
    were skipped."""
    if self.streak < self.limit:
      return
    where = (f"the last good checkpoint is step {last_good_checkpoint} in {checkpoint_dir}"
             if last_good_checkpoint is not None else "no checkpoint was saved before it")
    raise UserError(f"step {self.last_step}: {self.streak} steps in a row had a non-finite "
                    f"loss or gradients and were skipped, so the run stopped without saving; "
                    f"{where}. Lower the learning rate, check the data, or raise "
                    "max_consecutive_skips")


def _previous_total(workdir: str, start: int) -> int:
  """The 'train/skipped_steps' of the last record at or before step `start` (a resumed
  run continues the count), else 0."""
  path = os.path.join(workdir, "metrics.jsonl")
  total = 0
  if start and os.path.exists(path):
    with open(path) as f:
      for line in f:
        record = json.loads(line)
        if record.get("step", 0) <= start and "train/skipped_steps" in record:
          total = int(record["train/skipped_steps"])
  return total
