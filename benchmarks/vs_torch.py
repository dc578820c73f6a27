"""jaxgen's own train steps against the same architectures in PyTorch fp32 eager.

  python benchmarks/vs_torch.py [--rounds 3] [--steps 15] [--same-process]

For each case the two frameworks alternate for `rounds` rounds (so a noisy neighbour hits
both), each round a median over `steps` timed steps after warm-up; the JSON line per case
gives both medians of the round medians and the jaxgen/torch ratio. Each round of each
framework runs in a fresh process: with jaxgen's oneDNN convolutions
(`jaxgen.kernels.onednn`) in the same process, both share PyTorch's OpenMP runtime and
PyTorch's step ran ~35% slower (`--same-process`, the old way, shows it). A fresh process
needs a longer warm-up: PyTorch's DCGAN-28 step ran at 612-642 img/s after 3 warm-up steps
and 742-792 after 15 (standalone `peers/torch_dcgan.py`). jaxgen runs through
`benchmarks/throughput.py` (the library's jitted family step on all local devices);
PyTorch through `benchmarks/peers/` (needs `pip install torch==2.13.0`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch_dcgan  # noqa: E402
import torch_unet  # noqa: E402
import torch_vae  # noqa: E402

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
  from jaxgen import models
  kwargs = dict(config.model)
  ours = models.param_count(kwargs.pop("name"), **kwargs)
  if ours != torch_record["parameters"]:
    sys.exit(f"peer drift: jaxgen's network has {ours:,} parameters, PyTorch's "
             f"{torch_record['parameters']:,}")


def _config(name):
  from jaxgen import config as config_lib  # Not in a PyTorch round's process: only PyTorch.
  experiment, overrides, _ = CASES[name]
  return config_lib.load(experiment, overrides)


def _one_round(name: str, framework: str, steps: int, warmup: int) -> dict:
  """One framework's round of one case, in this process: its record, with images_per_s."""
  if framework == "jaxgen":
    import throughput
    return throughput.measure(_config(name), steps, warmup)
  return CASES[name][2](steps, warmup)


def _round(name, framework, args) -> float:
  if args.same_process:
    record = _one_round(name, framework, args.steps, args.warmup)
  else:
    command = [sys.executable, os.path.abspath(__file__), "--one-round", framework,
               "--cases", name, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    record = json.loads(out.strip().splitlines()[-1])
  if framework == "torch":
    _same_parameter_count(_config(name), record)
  return record["images_per_s"]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=15)
  parser.add_argument("--warmup", type=int, default=15)
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--same-process", action="store_true",
                      help="run both frameworks' rounds in this process (the old way)")
  parser.add_argument("--one-round", choices=("jaxgen", "torch"), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.one_round:
    print(json.dumps(_one_round(args.cases, args.one_round, args.steps, args.warmup)))
    return
  for name in args.cases.split(","):
    jax_rates, torch_rates = [], []
    for _ in range(args.rounds):
      jax_rates.append(_round(name, "jaxgen", args))
      torch_rates.append(_round(name, "torch", args))
    jax_rate, torch_rate = statistics.median(jax_rates), statistics.median(torch_rates)
    print(json.dumps({"case": name, "jaxgen_images_per_s": jax_rate,
                      "torch_images_per_s": torch_rate,
                      "ratio_jaxgen_over_torch": round(jax_rate / torch_rate, 3),
                      "jaxgen_rounds": jax_rates, "torch_rounds": torch_rates}), flush=True)


if __name__ == "__main__":
  main()
