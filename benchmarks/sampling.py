"""Seconds to sample images from the autoregressive models: naive vs row-cached.

  python benchmarks/sampling.py [--num 64] [--models pixelcnn,gated_pixelcnn,...] [--repeats 3]

For each experiments/{model}_fashion_mnist.py config at its default size (28x28 grey,
random weights: the work does not depend on what the weights are), jit-compiles both
samplers once, then times `--repeats` draws of `--num` images each with a fresh seed
(median reported, compile time separately), and checks on the first draw that both gave the
same images. One JSON line per model; run it on a quiet machine (`nproc` cores are used).
"""

import argparse
import json
import time

import jax
import numpy as np

from jaxgen import config as config_lib
from jaxgen.families import autoregressive as ar

MODELS = ("pixelcnn", "gated_pixelcnn", "pixelcnnpp", "pixelcnnpp_unet", "rowlstm")


def _timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=64)
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--naive-repeats", type=int, default=1,
                      help="naive draws are slow (minutes at 28x28 on a CPU); 0 skips them")
  args = parser.parse_args(argv)
  for name in args.models.split(","):
    config = config_lib.load(f"experiments/{name}_fashion_mnist.py", {})
    state = ar.init_state(config, jax.random.PRNGKey(0), ar.image_shape(config))
    result = {"model": name, "num_images": args.num, "image_shape": ar.image_shape(config),
              "params": sum(int(p.size) for p in jax.tree.leaves(state.params)),
              "backend": jax.default_backend(), "devices": jax.device_count()}
    draws = {}
    for mode, fn, repeats in (("cached", ar.sample, args.repeats),
                              ("naive", ar.sample_naive, args.naive_repeats)):
      if not repeats:
        continue
      sample = jax.jit(lambda s, r, fn=fn: fn(config, s, r, args.num))
      compiled, compile_s = _timed(lambda: sample.lower(state, jax.random.PRNGKey(0)).compile())
      times = []
      for seed in range(repeats):
        images, seconds = _timed(compiled, state, jax.random.PRNGKey(seed))
        times.append(seconds)
        if seed == 0:
          draws[mode] = np.asarray(images)
      result[f"{mode}_compile_s"] = round(compile_s, 2)
      result[f"{mode}_s"] = round(float(np.median(times)), 3)
      result[f"{mode}_runs_s"] = [round(t, 3) for t in times]
    if "naive" in draws:
      result["speedup"] = round(result["naive_s"] / result["cached_s"], 1)
      result["same_images"] = bool(np.array_equal(draws["cached"], draws["naive"]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
