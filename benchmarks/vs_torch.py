"""jaxgen's own train steps against the same architectures in PyTorch fp32 eager, one process.

  python benchmarks/vs_torch.py [--rounds 3] [--steps 15]

For each case the two frameworks alternate for `rounds` rounds (so a noisy neighbour hits
both), each round a median over `steps` timed steps after warm-up; the JSON line per case
gives both medians of the round medians and the jaxgen/torch ratio. jaxgen runs through
`benchmarks/throughput.py` (the library's jitted family step on all local devices);
PyTorch through `benchmarks/peers/` (needs `pip install torch==2.13.0`).
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import throughput  # noqa: E402
import torch_dcgan  # noqa: E402
import torch_unet  # noqa: E402
import torch_vae  # noqa: E402

from jaxgen import config as config_lib, models  # noqa: E402

DCGAN, VAE = "experiments/dcgan_fashion_mnist.py", "experiments/vae_binarized_fashion_mnist.py"
EDM = "experiments/edm_fashion_mnist.py"


def _dcgan_overrides(size, channels, batch):
  out = {"batch_size": str(batch)}
  for net in ("generator", "discriminator"):
    out.update({f"model.{net}.image_size": str(size), f"model.{net}.channels": str(channels)})
  return out


CASES = {
    "dcgan28_b64": (DCGAN, _dcgan_overrides(28, 1, 64),
                    lambda n, w: torch_dcgan.images_per_second(64, n, w, 28, 1, threads=2)),
    "dcgan64rgb_b64": (DCGAN, _dcgan_overrides(64, 3, 64),
                       lambda n, w: torch_dcgan.images_per_second(64, n, w, 64, 3, threads=2)),
    "conv_vae28_b128": (VAE, {"batch_size": "128"},
                        lambda n, w: torch_vae.images_per_second(128, n, w, 28, 1, threads=2)),
    # The EDM step at the experiment's widths (features 32) and at its :cpu widths (16).
    "edm_unet28_f32_b64": (EDM, {"batch_size": "64"}, lambda n, w: torch_unet.images_per_second(
        64, n, w, threads=2, features=32)),
    "edm_unet28_f16_b64": (EDM, {"batch_size": "64", "model.features": "16"},
                           lambda n, w: torch_unet.images_per_second(64, n, w, threads=2,
                                                                     features=16)),
}


def _same_parameter_count(config, torch_record) -> None:
  """Refuses a U-Net comparison whose two networks differ in size (a drifted peer)."""
  if "parameters" not in torch_record:
    return
  kwargs = dict(config.model)
  ours = models.param_count(kwargs.pop("name"), **kwargs)
  if ours != torch_record["parameters"]:
    sys.exit(f"peer drift: jaxgen's network has {ours:,} parameters, PyTorch's "
             f"{torch_record['parameters']:,}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=15)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--cases", default=",".join(CASES))
  args = parser.parse_args(argv)
  for name in args.cases.split(","):
    experiment, overrides, torch_fn = CASES[name]
    config = config_lib.load(experiment, overrides)
    jax_rates, torch_rates = [], []
    for _ in range(args.rounds):
      jax_rates.append(throughput.measure(config, args.steps, args.warmup)["images_per_s"])
      torch_record = torch_fn(args.steps, args.warmup)
      _same_parameter_count(config, torch_record)
      torch_rates.append(torch_record["images_per_s"])
    jax_rate, torch_rate = statistics.median(jax_rates), statistics.median(torch_rates)
    print(json.dumps({"case": name, "jaxgen_images_per_s": jax_rate,
                      "torch_images_per_s": torch_rate,
                      "ratio_jaxgen_over_torch": round(jax_rate / torch_rate, 3),
                      "jaxgen_rounds": jax_rates, "torch_rounds": torch_rates}), flush=True)


if __name__ == "__main__":
  main()
