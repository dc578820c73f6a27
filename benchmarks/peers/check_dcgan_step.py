"""Do jaxgen's DCGAN step and the PyTorch peer's compute the same function?

  python benchmarks/peers/check_dcgan_step.py [--steps 20] [--batch-size 16] [--seed 0]

Builds `experiments/dcgan_fashion_mnist.py`'s networks in jaxgen, copies their initial
parameters and BatchNorm statistics into `torch_dcgan.py`'s Generator and Discriminator,
then trains both for --steps iterations on the same batches (uniform noise images) with
the same latents, and prints, per step, both frameworks' D and G losses and the largest
difference of any parameter (in torch's layouts).

GAN training with Adam amplifies rounding: Adam divides each gradient by its own running
magnitude, so a parameter whose gradient is near zero moves by up to the learning rate in
a direction rounding decides. The yardstick is therefore a control: the same jaxgen step
run eagerly and under `jax.jit` is the same function with different float32 rounding (XLA
fuses and reorders differently). If torch's distance from eager jaxgen grows like jit's,
the two steps compute the same function; a step that differs in what it computes (a loss,
an update order, a BatchNorm pass, an optimiser setting) sits far above the control from
the first step.

Why: the two trainers reached different FIDs at equal steps (benchmarks/README.md, "GAN vs
PyTorch"), and a systematic gap needs this check before it can be put on random streams.
"""

import argparse
import copy
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_dcgan  # noqa: E402  (the peer beside this file)

from jaxgen import config as config_lib  # noqa: E402
from jaxgen.families import gan  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENT = os.path.join(ROOT, "experiments", "dcgan_fashion_mnist.py")
G, D = gan.G, gan.D


def _t(a):
  return torch.from_numpy(np.array(a, dtype=np.float32))


def _grid_dense_to_torch(kernel, side, width):
  """A Dense kernel [in, side·side·width] whose outputs jaxgen reshapes NHWC -> torch's
  Linear weight [side·side·width, in] whose outputs torch reshapes NCHW."""
  k = np.asarray(kernel).reshape(-1, side, side, width)
  return k.transpose(3, 1, 2, 0).reshape(side * side * width, -1)


def _flat_head_to_torch(kernel, side, width):
  """A head kernel [side·side·width, 1] over NHWC-flattened features -> torch [1, ...] NCHW."""
  return np.asarray(kernel).reshape(side, side, width, -1).transpose(3, 2, 0, 1).reshape(1, -1)


def _conv_to_torch(kernel):
  """HWIO [kh, kw, I, O] -> OIHW. For jaxgen's ConvTranspose (stored as the forward
  convolution's kernel [kh, kw, features, in_features]) this is torch's ConvTranspose2d
  weight [in_features, features, kh, kw], the same forward convolution's OIHW."""
  return np.asarray(kernel).transpose(3, 2, 0, 1)


def _bn(module, params, stats):
  module.weight.data = _t(params["scale"])
  module.bias.data = _t(params["bias"])
  module.running_mean.data = _t(stats["mean"])
  module.running_var.data = _t(stats["var"])


def load_into_torch(state, generator, discriminator, side=7):
  """Copies jaxgen's generator and discriminator into the peer's modules."""
  g, gs = state.params[G], state.model_state[G]
  width = g["BatchNorm_0"]["scale"].shape[0]
  generator.project.weight.data = _t(_grid_dense_to_torch(g["Dense_0"]["kernel"], side, width))
  body = generator.body
  _bn(body[0], g["BatchNorm_0"], gs["BatchNorm_0"])
  body[2].weight.data = _t(_conv_to_torch(g["ConvTranspose_0"]["kernel"]))
  _bn(body[3], g["BatchNorm_1"], gs["BatchNorm_1"])
  body[5].weight.data = _t(_conv_to_torch(g["ConvTranspose_1"]["kernel"]))
  body[5].bias.data = _t(g["ConvTranspose_1"]["bias"])
  d, ds = state.params[D], state.model_state[D]
  body = discriminator.body
  body[0].weight.data = _t(_conv_to_torch(d["Conv_0"]["kernel"]))
  body[0].bias.data = _t(d["Conv_0"]["bias"])
  body[2].weight.data = _t(_conv_to_torch(d["Conv_1"]["kernel"]))
  _bn(body[3], d["BatchNorm_0"], ds["BatchNorm_0"])
  head = d["ProjectionHead_0"]["Dense_0"]
  d_width = d["BatchNorm_0"]["scale"].shape[0]
  body[6].weight.data = _t(_flat_head_to_torch(head["kernel"], side, d_width))
  body[6].bias.data = _t(head["bias"])


def torch_difference(state, generator, discriminator):
  """The largest |jaxgen - torch| over all parameters, compared in torch's layouts: jaxgen's
  loaded into copies of the peer's modules, the one mapping `load_into_torch` defines."""
  g, d = copy.deepcopy(generator), copy.deepcopy(discriminator)
  load_into_torch(state, g, d)
  pairs = [*zip(g.parameters(), generator.parameters()),
           *zip(d.parameters(), discriminator.parameters())]
  return max(float((a - b).abs().max()) for a, b in pairs)


def max_difference(a, b):
  """The largest |a - b| over two params trees of one layout."""
  diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(np.asarray(x) - y))), a, b)
  return max(jax.tree_util.tree_leaves(diffs))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  torch.set_num_threads(2)
  config = config_lib.load(EXPERIMENT, {"batch_size": str(args.batch_size)})
  state = gan.init_state(config, jax.random.PRNGKey(args.seed), (28, 28, 1))
  latent_dim = config.model.generator.latent_dim
  features = config.model.generator.features
  generator = torch_dcgan.Generator(28, 1, features, latent_dim)
  discriminator = torch_dcgan.Discriminator(28, 1, config.model.discriminator.features)
  load_into_torch(state, generator, discriminator)
  step = torch_dcgan.make_step(generator, discriminator, latent_dim, torch.contiguous_format,
                               d_grads_in_g_step=False)

  # jaxgen's step draws its latents inside; here it takes the ones torch is given.
  current = {}
  gan._latents = lambda rng, num, dim, truncation=0.0: current["z"]

  def with_latents(s, b, z):  # Traced z under jit, a concrete one eagerly.
    current["z"] = z
    return gan.train_step(config, s, b)

  jitted = jax.jit(with_latents)
  jit_state = state
  rng = np.random.default_rng(args.seed)
  for t in range(args.steps):
    real = rng.uniform(-1, 1, (args.batch_size, 28, 28, 1)).astype(np.float32)
    z = rng.standard_normal((args.batch_size, latent_dim)).astype(np.float32)
    batch = {"image": jnp.asarray(real)}
    state, metrics = with_latents(state, batch, jnp.asarray(z))
    jit_state, jit_metrics = jitted(jit_state, batch, jnp.asarray(z))
    d_loss, g_loss = step(torch.from_numpy(real.transpose(0, 3, 1, 2).copy()),
                          torch.from_numpy(z))
    print(json.dumps({
        "step": t + 1, "jaxgen_d_loss": round(float(metrics["train/d_loss"]), 7),
        "jit_d_loss": round(float(jit_metrics["train/d_loss"]), 7),
        "torch_d_loss": round(d_loss, 7),
        "jaxgen_g_loss": round(float(metrics["train/g_loss"]), 7),
        "jit_g_loss": round(float(jit_metrics["train/g_loss"]), 7),
        "torch_g_loss": round(g_loss, 7),
        "max_param_difference_jit": max_difference(state.params, jit_state.params),
        "max_param_difference_torch": torch_difference(state, generator, discriminator)}),
          flush=True)


if __name__ == "__main__":
  main()
