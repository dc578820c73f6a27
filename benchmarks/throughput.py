"""Step throughput of an experiment's jitted train step, as one JSON object.

  python benchmarks/throughput.py --config experiments/dcgan_fashion_mnist.py [--steps 30]
      [--config.model.dtype=bfloat16] [--config.optim.accumulate_steps=4]
      [--config.model.remat=True]   # the U-Net's (model.generator.remat for residual GANs)

Measures the step alone on an in-memory batch (the input pipeline is measured separately),
sharded over all local devices exactly as `jaxgen train` shards it. Reports compile seconds,
median step ms, images/s (global and per device), XLA's FLOPs per step (cost_analysis), MFU
when the device's peak is known or given with --peak-tflops (at model.dtype's peak), and
the step's device memory from XLA's memory_analysis.
"""

import argparse
import json
import statistics
import sys
import time

import jax
import numpy as np

from jaxgen import config as config_lib, families, images, sharding, train

# Dense peak TFLOP/s per chip by device_kind substring and dtype (vendor datasheets).
PEAK_TFLOPS = {
    ("H100", "float32"): 67.0, ("H100", "bfloat16"): 989.0,
    ("H200", "float32"): 67.0, ("H200", "bfloat16"): 989.0,
    ("A100", "float32"): 19.5, ("A100", "bfloat16"): 312.0,
    ("TPU v4", "bfloat16"): 275.0, ("TPU v5 lite", "bfloat16"): 197.0,
    ("TPU v5p", "bfloat16"): 459.0,
}


def _flops(compiled) -> float | None:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Its shape changes across jax versions.
    analysis = analysis[0] if analysis else {}
  return float(analysis["flops"]) if analysis and "flops" in analysis else None


def _memory(compiled) -> dict:
  """The compiled step's device memory per device, MiB: arguments (the state and batch),
  outputs, XLA's temporaries (activations kept for the backward pass among them), and the
  peak, their sum less the outputs aliased onto donated arguments."""
  mem = compiled.memory_analysis()
  if mem is None:  # Not every backend reports it.
    return {}
  mib = lambda b: round(b / 2 ** 20, 2)
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
          - mem.alias_size_in_bytes)
  return {"memory_arguments_mib": mib(mem.argument_size_in_bytes),
          "memory_outputs_mib": mib(mem.output_size_in_bytes),
          "memory_temp_mib": mib(mem.temp_size_in_bytes), "memory_peak_mib": mib(peak)}


def _peak(device, dtype: str, override: float | None) -> float | None:
  if override:
    return override
  for (kind, peak_dtype), value in PEAK_TFLOPS.items():
    if kind in device.device_kind and peak_dtype == dtype:
      return value
  return None


def synthetic_batch(config, family, mesh):
  """A batch of the right shape, dtype and value range, placed like real batches."""
  h, w, c = family.image_shape(config)
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (config.batch_size, h, w, c))
  scale, offset = images.scale_offset(config.data.normalize)
  image = (pixels / scale + offset).astype(
      np.int32 if config.data.normalize == "integer" else np.float32)
  return {"image": jax.device_put(image, sharding.batch_sharding(mesh)),
          "label": jax.device_put(np.zeros(config.batch_size, np.int32),
                                  sharding.batch_sharding(mesh))}


def measure(config, steps: int, warmup: int, peak_tflops: float | None = None) -> dict:
  dtype = config.model.get("dtype", "float32")
  family = families.get(config.family)
  mesh = sharding.create_mesh(config.mesh)
  abstract, init, shardings = train.create_state_fns(config, family, mesh)
  with jax.set_mesh(mesh):
    state = init()
    batch = synthetic_batch(config, family, mesh)
    step_fn = train.compile_train_step(config, family, mesh, shardings)
    start = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    times = []
    for i in range(warmup + steps):
      start = time.perf_counter()
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
      if i >= warmup:
        times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  flops = _flops(compiled)
  peak = _peak(jax.devices()[0], dtype, peak_tflops)
  n = jax.device_count()
  result = {
      "experiment": config.family, "batch_size": config.batch_size, "devices": n,
      "dtype": dtype, "accumulate_steps": config.optim.get("accumulate_steps", 1),
      "device_kind": jax.devices()[0].device_kind, "compile_s": round(compile_s, 3),
      "median_step_ms": round(1e3 * step_s, 3),
      "p10_step_ms": round(1e3 * float(np.percentile(times, 10)), 3),
      "p90_step_ms": round(1e3 * float(np.percentile(times, 90)), 3),
      "images_per_s": round(config.batch_size / step_s, 1),
      "images_per_s_per_device": round(config.batch_size / step_s / n, 1),
      "flops_per_step": flops, "flops_source": "XLA cost_analysis (whole step, all devices)",
      "tflops_per_s_per_device": round(flops / step_s / n / 1e12, 4) if flops else None,
      "peak_tflops_per_device": peak,
  }
  result["mfu"] = (round(result["tflops_per_s_per_device"] / peak, 4)
                   if peak and result["tflops_per_s_per_device"] else None)
  result.update(_memory(compiled))
  return result


def parse_config(parser: argparse.ArgumentParser, argv=None):
  """(args, config): the parser's own flags plus --config and --config.KEY=VALUE overrides."""
  parser.add_argument("--config", required=True)
  args, rest = parser.parse_known_args(argv)
  _, overrides = config_lib.split_override_args(rest)
  return args, config_lib.load(args.config, overrides)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--peak-tflops", type=float, default=None,
                      help="the device's peak, for MFU where it is not in the table")
  args, config = parse_config(parser, argv)
  print(json.dumps({"config": args.config, **measure(config, args.steps, args.warmup,
                                                      args.peak_tflops)}))


if __name__ == "__main__":
  sys.exit(main())
