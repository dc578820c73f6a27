"""The timing loop and JSON record both PyTorch peers share."""

import statistics
import time

import torch


def setup(threads, channels_last):
  """Seeds torch, sets its thread count, and returns the memory format to use."""
  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  return torch.channels_last if channels_last else torch.contiguous_format


def record(model_name, batch_size, step, steps, warmup, channels_last):
  """Times `steps` calls of `step()` after `warmup`; the JSON record as a dict."""
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    step()
    if i >= warmup:
      times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {"model": model_name, "framework": "torch", "batch_size": batch_size,
          "median_step_ms": round(1000 * median, 2),
          "images_per_s": round(batch_size / median, 1), "threads": torch.get_num_threads(),
          "channels_last": channels_last}
