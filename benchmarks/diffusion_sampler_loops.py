"""Diffusion samplers as jitted lax.fori_loop (what jaxgen runs) against the same loop unrolled
(fori_loop(unroll=True), and a Python loop in the trace): compile and run seconds for 64
samples of edm_fashion_mnist:cpu (untrained weights: timing only).

  python benchmarks/diffusion_sampler_loops.py
"""
import functools, os, sys, time
os.environ.pop("XLA_FLAGS", None)
import jax, jax.numpy as jnp, numpy as np
from jax import lax
from jaxgen import config as config_lib
from jaxgen.families import diffusion, diffusion_samplers as samplers
c = config_lib.load("experiments/edm_fashion_mnist.py:cpu", {})
state = jax.jit(lambda r: diffusion.init_state(c, r, (28, 28, 1)))(jax.random.PRNGKey(0))
state = state.replace(params=jax.tree.map(lambda p: p + 0.01, state.params))
orig = lax.fori_loop
for sampler, steps in (("dpmpp_2m", 10), ("heun", 6)):
  def pyloop(lo, hi, body, init):
    x = init
    for i in range(lo, hi):
      x = body(i, x)
    return x
  for mode in ("fori", "fori_unroll", "python"):
    lax.fori_loop = {"fori": orig, "fori_unroll": functools.partial(orig, unroll=True),
                     "python": pyloop}[mode]
    with c.unlocked():
      c.sampling.sampler, c.sampling.steps = sampler, steps
    f = jax.jit(lambda s, r: diffusion.sample(c, s, r, 64))
    t = time.perf_counter(); comp = f.lower(state, jax.random.PRNGKey(0)).compile(); tc = time.perf_counter() - t
    comp(state, jax.random.PRNGKey(0)).block_until_ready()
    ts = []
    for i in range(3):
      t = time.perf_counter(); comp(state, jax.random.PRNGKey(i)).block_until_ready(); ts.append(time.perf_counter() - t)
    print(f"{sampler} steps {steps} {mode}: compile {tc:.1f} s, run {np.median(ts):.2f} s (64 samples)", flush=True)
lax.fori_loop = orig
