"""Median times of several functions called in turn, so that a noisy neighbour hits all."""

import statistics
import time


def medians_ms(cases: dict, repeats: int) -> dict:
  """{name: zero-argument callable that blocks until done} -> {name: median ms}.

  Each is called once to compile and warm up, then all in turn, `repeats` rounds.
  """
  for fn in cases.values():
    fn()
  times = {name: [] for name in cases}
  for _ in range(repeats):
    for name, fn in cases.items():
      start = time.perf_counter()
      fn()
      times[name].append(1e3 * (time.perf_counter() - start))
  return {name: statistics.median(t) for name, t in times.items()}
