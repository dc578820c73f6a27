"""Where metrics go: WORKDIR/metrics.jsonl, TensorBoard under WORKDIR/tb/, and a progress line."""

import json
import os
import sys
import time

import jax
import numpy as np


class MetricsWriter:
  """Writes from process 0 only; every record is one JSON object with a "step"."""

  def __init__(self, workdir: str, total_steps: int):
    self.enabled = jax.process_index() == 0
    self.total_steps = total_steps
    self.start = time.time()
    if not self.enabled:
      return
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)
    import tensorflow as tf  # Already loaded by the data pipeline; TB writing needs it.
    self.tf = tf
    self.tb = tf.summary.create_file_writer(os.path.join(workdir, "tb"))

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    # Provenance (feature network, split) travels as strings: JSON only, not TensorBoard.
    scalars = {k: _to_float(v) for k, v in metrics.items() if not isinstance(v, str)}
    texts = {k: v for k, v in metrics.items() if isinstance(v, str)}
    self.jsonl.write(json.dumps({"step": step, **scalars, **texts}) + "\n")
    with self.tb.as_default():
      for name, value in scalars.items():
        self.tf.summary.scalar(name, value, step=step)
    self.tb.flush()

  def progress(self, step: int, metrics: dict) -> None:
    """One line a human reads: step, main losses, throughput and time left."""
    if not self.enabled:
      return
    shown = [f"{k.split('/')[-1]} {_to_float(v):.4g}" for k, v in metrics.items()
             if k.startswith("train/") and ("loss" in k or "bits" in k)]
    rate = metrics.get("perf/images_per_s")
    steps_per_s = metrics.get("perf/steps_per_s")
    eta = (self.total_steps - step) / steps_per_s if steps_per_s else None
    parts = [f"step {step}/{self.total_steps}", *shown]
    if metrics.get("train/skipped_steps"):
      parts.append(f"skipped {int(metrics['train/skipped_steps'])} non-finite")
    if rate:
      parts.append(f"{rate:,.0f} img/s")
    if eta is not None:
      parts.append(f"eta {_duration(eta)}")
    parts.append(f"elapsed {_duration(time.time() - self.start)}")
    print(" | ".join(parts), file=sys.stdout, flush=True)

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tb.close()


def _to_float(value) -> float:
  return float(np.asarray(value))


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
