"""Diffusion samplers as jitted lax.fori_loop (what jaxgen runs) against the same loop unrolled
(fori_loop(unroll=True), and a Python loop in the trace): compile and run seconds for 64
samples of edm_fashion_mnist:cpu (untrained weights: timing only).

  python benchmarks/diffusion_sampler_loops.py

The samplers call `lax.fori_loop` through the `jax.lax` module, so each mode swaps that one
attribute while its sampler is traced, and restores it after.
"""

import functools
import os
import statistics
import time

os.environ.pop("XLA_FLAGS", None)  # One real CPU device, as `jaxgen train` sees it.

import jax  # noqa: E402
from jax import lax  # noqa: E402

from jaxgen import config as config_lib  # noqa: E402
from jaxgen.families import diffusion  # noqa: E402

NUM = 64


def _python_loop(lower, upper, body, init):
  x = init
  for i in range(lower, upper):
    x = body(i, x)
  return x


def main():
  config = config_lib.load("experiments/edm_fashion_mnist.py:cpu", {})
  shape = diffusion.image_shape(config)
  state = jax.jit(lambda r: diffusion.init_state(config, r, shape))(jax.random.PRNGKey(0))
  # Non-zero outputs, so the samplers' arithmetic is not trivially constant.
  state = state.replace(params=jax.tree.map(lambda p: p + 0.01, state.params))
  fori_loop = lax.fori_loop
  modes = {"fori": fori_loop, "fori_unroll": functools.partial(fori_loop, unroll=True),
           "python": _python_loop}
  try:
    for sampler, steps in (("dpmpp_2m", 10), ("heun", 6)):
      with config.unlocked():
        config.sampling.sampler, config.sampling.steps = sampler, steps
      for mode, loop in modes.items():
        lax.fori_loop = loop
        draw = jax.jit(lambda s, r: diffusion.sample(config, s, r, NUM))
        start = time.perf_counter()
        compiled = draw.lower(state, jax.random.PRNGKey(0)).compile()
        compile_s = time.perf_counter() - start
        compiled(state, jax.random.PRNGKey(0)).block_until_ready()
        times = []
        for i in range(3):
          start = time.perf_counter()
          compiled(state, jax.random.PRNGKey(i)).block_until_ready()
          times.append(time.perf_counter() - start)
        print(f"{sampler} steps {steps} {mode}: compile {compile_s:.1f} s, run "
              f"{statistics.median(times):.2f} s ({NUM} samples)", flush=True)
  finally:
    lax.fori_loop = fori_loop


if __name__ == "__main__":
  main()
