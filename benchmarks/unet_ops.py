"""The U-Net's GroupNorm and dropout alone on XLA:CPU, before and after jaxgen's versions.

  python benchmarks/unet_ops.py [--repeats 21]

For each activation shape of the `edm_fashion_mnist:cpu` step (batch 64) times, as JSON lines
(medians in ms):
- GroupNorm → scale-shift → SiLU, forward and all gradients: Flax's `nn.GroupNorm` then
  jnp, differentiated by JAX, against `jaxgen.models.norm.group_norm`, alternating repeat by
  repeat;
- a dropout mask and its application (`jax.random.bernoulli`, rate 0.1) under JAX's CPU
  lowering of Threefry (a rolled loop) and under `jaxgen.kernels.threefry`'s unrolled one,
  alternating: JAX's is compiled before jaxgen's lowering is registered (a registration
  holds for the rest of the process), then both compiled programs are timed.
"""

import argparse
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import alternating
from jaxgen.kernels import threefry
from jaxgen.models import norm, unet

# (height, width, channels): the step's block inputs at 28, 14 and 7 pixels.
SHAPES = ((28, 28, 16), (28, 28, 48), (14, 14, 32), (14, 14, 64), (7, 7, 64))
BATCH = 64


def _time(fns: dict, args: dict, repeats: int) -> dict:
  """Medians in ms of fns[name](*args[name]), alternating."""
  cases = {name: lambda f=fn, a=args[name]: jax.block_until_ready(f(*a))
           for name, fn in fns.items()}
  return {name: round(ms, 3) for name, ms in alternating.medians_ms(cases, repeats).items()}


def _dropout(key, x):
  """The compiled mask-and-apply program for x, under the lowering registered now."""
  keep = 0.9
  fn = jax.jit(lambda k, v: jnp.where(jax.random.bernoulli(k, keep, v.shape), v / keep, 0))
  return fn.lower(key, x).compile()


def _groupnorm_cases(shape, groups):
  rng = np.random.default_rng(0)
  c = shape[-1]
  x = jnp.asarray(rng.standard_normal((BATCH, *shape), np.float32))
  gamma, beta = jnp.ones(c), jnp.zeros(c)
  scale = shift = jnp.asarray(0.1 * rng.standard_normal((BATCH, c), np.float32))

  def flax_chain(x, gamma, beta, scale, shift):
    y = nn.GroupNorm(num_groups=groups).apply({"params": {"scale": gamma, "bias": beta}}, x)
    return nn.silu(y * (1 + scale[:, None, None, :]) + shift[:, None, None, :])

  def fused(x, gamma, beta, scale, shift):
    return norm.group_norm(x, gamma, beta, scale, shift, groups, True, jnp.float32)

  def grads(fn):
    return jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a) * a[0]), argnums=(0, 1, 2, 3, 4)))

  args = (x, gamma, beta, scale, shift)
  return {"flax": grads(flax_chain), "jaxgen": grads(fused)}, {"flax": args, "jaxgen": args}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=21)
  args = parser.parse_args()
  key = jax.random.key(0)
  inputs = {shape: jnp.ones((BATCH, *shape)) for shape in SHAPES}
  rolled = {shape: _dropout(key, x) for shape, x in inputs.items()}
  threefry.use_unrolled_on_cpu()
  for shape, x in inputs.items():
    masks = _time({"rolled": rolled[shape], "unrolled": _dropout(key, x)},
                  {"rolled": (key, x), "unrolled": (key, x)}, args.repeats)
    fns, fn_args = _groupnorm_cases(shape, unet.groups(shape[-1]))
    norms = _time(fns, fn_args, args.repeats)
    print(json.dumps({
        "shape": [BATCH, *shape],
        "groupnorm_silu_grads_ms": norms,
        "groupnorm_speedup": round(norms["flax"] / norms["jaxgen"], 2),
        "dropout_ms": masks,
        "dropout_speedup": round(masks["rolled"] / masks["unrolled"], 2)}))

if __name__ == "__main__":
  main()
