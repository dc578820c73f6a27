"""The U-Net's 3×3 convolutions alone, jaxgen (XLA's and oneDNN's) against PyTorch, as JSON lines.

  python benchmarks/peers/conv_ops.py [--repeats 9] [--threads 2]

For each shape of the `edm_fashion_mnist:cpu` U-Net step (batch 64, NHWC for JAX and NCHW
for PyTorch, fp32, stride 1, padding 1) times the forward convolution and the forward pass
with both gradients (jaxgen's `layers.conv`, the one the U-Net uses, against
`torch.nn.Conv2d`, both without bias); jaxgen's twice, with XLA's convolutions and with
oneDNN's (`JAXGEN_CPU_CONV`, read when each is traced). All alternate, repeat by repeat;
medians in ms. One process: PyTorch shares its OpenMP runtime with jaxgen's oneDNN here,
which slowed PyTorch's whole steps by about a third in two `vs_torch.py --same-process`
runs, so its times may be inflated. `--threads` sets PyTorch's threads; XLA takes every
core it sees, which on the 2-core development machine is the same.
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import alternating  # noqa: E402
import torch_unet  # noqa: E402,F401  (its import check: exits with the install hint)
import torch  # noqa: E402

from jaxgen.models import layers  # noqa: E402

# (batch, side, in channels, out channels) of the U-Net's convolutions at features 16.
SHAPES = ((64, 28, 16, 16), (64, 28, 48, 16), (64, 28, 32, 32), (64, 14, 32, 32),
          (64, 14, 64, 32), (64, 7, 32, 32))
PADS = ((1, 1), (1, 1))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=9)
  parser.add_argument("--threads", type=int, default=2)
  args = parser.parse_args(argv)
  torch.set_num_threads(args.threads)
  for batch, side, cin, cout in SHAPES:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, side, side, cin), np.float32)
    kernel = rng.standard_normal((3, 3, cin, cout), np.float32) / np.sqrt(9 * cin)
    dy = rng.standard_normal((batch, side, side, cout), np.float32)
    jx, jk, jdy = map(jnp.asarray, (x, kernel, dy))
    jitted = {}
    for mode in ("xla", "onednn"):
      os.environ["JAXGEN_CPU_CONV"] = mode
      forward = jax.jit(lambda u, k: layers.conv(u, k, (1, 1), PADS))
      grads = jax.jit(lambda u, k, g: jax.vjp(lambda a, b: layers.conv(a, b, (1, 1), PADS),
                                              u, k)[1](g))
      jitted[mode] = (forward.lower(jx, jk).compile(), grads.lower(jx, jk, jdy).compile())
      if ("JaxgenConv" in jitted[mode][1].as_text()) != (mode == "onednn"):
        sys.exit(f"JAXGEN_CPU_CONV={mode} did not choose its convolutions (oneDNN missing?)")
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    tconv = torch.nn.Conv2d(cin, cout, 3, 1, 1, bias=False)  # layers.conv has no bias.
    tdy = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())

    def torch_forward():
      with torch.no_grad():
        tconv(tx)

    def torch_grads():
      torch.autograd.grad(tconv(tx), [tx, tconv.weight], tdy)

    cases = {"torch_forward": torch_forward, "torch_forward_and_grads": torch_grads}
    for mode, (forward, grads) in jitted.items():
      cases[f"{mode}_forward"] = lambda f=forward: jax.block_until_ready(f(jx, jk))
      cases[f"{mode}_forward_and_grads"] = lambda f=forward, g=grads: jax.block_until_ready(
          (f(jx, jk), g(jx, jk, jdy)))
    medians = {name: round(ms, 2)
               for name, ms in alternating.medians_ms(cases, args.repeats).items()}
    ratios = {f"{kind}_ratio_{mode}_over_torch": round(
        medians[f"{mode}_{kind}"] / medians[f"torch_{kind}"], 2)
        for mode in jitted for kind in ("forward", "forward_and_grads")}
    print(json.dumps({"shape": f"{batch}x{side}x{side} {cin}->{cout}", **medians, **ratios}),
          flush=True)


if __name__ == "__main__":
  main()
