"""jaxgen's DCGAN against the same DCGAN trained in PyTorch: training speed and sample quality.

  python benchmarks/gan_vs_torch.py --steps 5000 [--data-dir D] [--workdir runs/gan_vs_torch]
      [--num-samples 10000] [--threads 2] [--batch-size 64] [--seed 0]
      [--frameworks jaxgen,torch]

Trains `experiments/dcgan_fashion_mnist.py` with `jaxgen train` (1 CPU device) and then
its PyTorch twin (`peers/torch_dcgan.py --train`: same architecture, initialisation, loss,
step order, optimisers, batch and generator EMA) for the same number of steps on the full
Fashion-MNIST train split, one after the other, each pinned to the same `--threads` cores.
Each samples `--num-samples` images from its EMA generator and from its raw (trained)
generator, both with the running BatchNorm statistics, scored against the 10k test images
with jaxgen's feature network (FID, KID ± SE, precision, recall; it must exist:
`jaxgen train-features --dataset fashion_mnist`). Prints one JSON line per framework and
weights, the jaxgen/torch images/s ratio, and a markdown table. `--frameworks torch` runs
only the peer: a jaxgen run of the same command is bit-for-bit repeatable, so its numbers
from an earlier run stand.

images/s is the median over log intervals (100 steps) after the first, for both: compile,
data loading and start-up are excluded (wall_s, over the train and sample processes,
includes them). The machine must be otherwise idle for the ratio to mean anything: the two
runs are minutes apart, so a neighbour's load hits only one, and PyTorch's OpenMP threads
slow down far more than XLA's when a core is taken (~10x against ~2x, seen on 2 cores).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from jaxgen import config as config_lib
from jaxgen.data import datasets
from jaxgen.errors import UserError
from jaxgen.evaluators import features
from jaxgen.evaluators.sample_quality import compare, image_statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, "experiments", "dcgan_fashion_mnist.py")
PEER = os.path.join(ROOT, "benchmarks", "peers", "torch_dcgan.py")
FEATURE_NETWORK = "fashion_mnist"
_ADAM = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, schedule="constant",
             warmup_steps=0, grad_clip=0.0)
# What peers/torch_dcgan.py --train implements; a key the experiment lacks (an older jaxgen)
# is taken to hold it.
PEER_SETTINGS = {
    "family": "gan", "ema_decay": 0.999, "data.normalize": "symmetric",
    "data.dequantize": False, "data.shuffle": True, "data.image_size": None,
    **{f"data.augment.{k}": v for k, v in
       dict(flip=False, rotation=0.0, zoom=0.0, translate=0.0).items()},
    **{f"optim.{net}.{k}": v for net in ("generator", "discriminator")
       for k, v in _ADAM.items()},
    **{f"model.{net}.{k}": v for net in ("generator", "discriminator")
       for k, v in dict(image_size=28, channels=1, features=64).items()},
    "model.generator.latent_dim": 100, "model.discriminator.norm": "batch",
    "model.discriminator.spectral_norm": False, "model.num_classes": 0,
    "gan.loss": "non_saturating", "gan.n_critic": 1, "gan.gradient_penalty": 0.0,
    "gan.r1_gamma": 0.0, "gan.diffaugment": "",
}


def load_feature_network():
  """(features_fn, info), or exit saying how to create the network: fail before training."""
  try:
    return features.load(FEATURE_NETWORK)
  except UserError as e:
    sys.exit(f"gan_vs_torch: scoring needs the '{FEATURE_NETWORK}' feature network: create "
             f"it with `jaxgen train-features --dataset {FEATURE_NETWORK}` (~5 CPU minutes), "
             f"then re-run. jaxgen said: {e}")


def check_peer_matches(overrides):
  """Exits naming each setting of the jaxgen run that the PyTorch peer does not implement."""
  config = config_lib.load(EXPERIMENT, overrides)
  wrong = []
  for key, expected in PEER_SETTINGS.items():
    node = config
    for part in key.split("."):
      node = node.get(part, expected) if hasattr(node, "get") else expected
    if node != expected:
      wrong.append(f"{key}={node!r} (peer: {expected!r})")
  if wrong:
    sys.exit(f"gan_vs_torch: {os.path.relpath(EXPERIMENT, ROOT)} no longer matches "
             f"peers/torch_dcgan.py --train: {'; '.join(wrong)}; teach the peer these "
             "settings or update PEER_SETTINGS")


def split_images(data_dir, split):
  """uint8 [n, 28, 28, 1] of a Fashion-MNIST split, read the way jaxgen's training reads it."""
  data = config_lib.base_config().data
  data.update(dict(name="fashion_mnist", data_dir=data_dir))
  return datasets.load_split(data, split).images


def subprocess_env(threads):
  """(env, command prefix): CPU only, one device, both runs on the same `threads` cores."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  # A forced device count would split jaxgen's batch over fake devices; torch has one.
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  cores = os.cpu_count() or threads
  if not 1 <= threads <= cores:
    sys.exit(f"--threads={threads}: this machine has {cores} cores; pass 1 to {cores}")
  # XLA sizes its thread pool from the CPU affinity mask; torch is told explicitly too.
  prefix = ["taskset", "-c", f"0-{threads - 1}"] if threads < cores else []
  return env, prefix


def run(command, env, capture=False):
  """Runs `command`, its progress on our stderr; (stdout or None, wall seconds)."""
  start = time.perf_counter()
  done = subprocess.run(command, env=env, cwd=ROOT, text=True,
                        stdout=subprocess.PIPE if capture else sys.stderr)
  if done.returncode:
    sys.exit(f"gan_vs_torch: {' '.join(command)} exited with {done.returncode}")
  return done.stdout, time.perf_counter() - start


def jaxgen_overrides(args):
  """--config.KEY=VALUE of the jaxgen run, as {KEY: VALUE}."""
  # Sampling and saving only at the last step: sample grids and saves are not training.
  overrides = {"total_steps": str(args.steps), "eval_every": "0", "sample_every": "0",
               "checkpoint_every": "0", "batch_size": str(args.batch_size),
               "seed": str(args.seed)}
  if args.data_dir:
    overrides["data.data_dir"] = args.data_dir
  return overrides


def train_jaxgen(args, workdir, env, prefix):
  """Trains and samples with the `jaxgen` CLI; (its record (images/s from metrics.jsonl),
  {weights: samples.npz})."""
  if os.path.exists(workdir):  # jaxgen would resume from an old checkpoint there.
    shutil.rmtree(workdir)
  jaxgen = [sys.executable, "-m", "jaxgen"]
  overrides = [f"--config.{k}={v}" for k, v in jaxgen_overrides(args).items()]
  _, train_wall = run([*prefix, *jaxgen, "train", "--config", EXPERIMENT, "--workdir",
                       workdir, *overrides], env)
  samples, sample_wall = {}, 0.0
  for weights in ("ema", "raw"):
    samples[weights] = os.path.join(os.path.dirname(workdir), f"jaxgen_{weights}_samples.npz")
    _, wall = run([*prefix, *jaxgen, "sample", "--workdir", workdir, "--num",
                   str(args.num_samples), "--out", samples[weights],
                   f"--config.sampling.weights={weights}"], env)
    sample_wall += wall
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = sorted((json.loads(line) for line in f), key=lambda r: r["step"])
  rates = [r["perf/images_per_s"] for r in logged if "perf/images_per_s" in r]
  last = [r for r in logged if "train/d_loss" in r][-1]
  record = {"framework": "jaxgen", "steps": args.steps, "threads": args.threads,
            "images_per_s": round(statistics.median(rates[1:] or rates), 1),
            "wall_s": round(train_wall + sample_wall, 1),
            "d_loss": round(last["train/d_loss"], 4), "g_loss": round(last["train/g_loss"], 4)}
  return record, samples


def train_torch(args, train_npz, workdir, env, prefix):
  """Trains and samples with the PyTorch peer; (its record, {weights: samples.npz})."""
  samples = {w: os.path.join(workdir, f"torch_{w}_samples.npz") for w in ("ema", "raw")}
  out, wall = run([*prefix, sys.executable, PEER, "--train", "--steps", str(args.steps),
                   "--data", train_npz, "--out", samples["ema"], "--raw-out", samples["raw"],
                   "--num-samples", str(args.num_samples), "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size), "--seed", str(args.seed)], env,
                  capture=True)
  peer = json.loads(out.strip().splitlines()[-1])
  return {"framework": "torch", "steps": args.steps, "threads": peer["threads"],
          "images_per_s": peer["interval_images_per_s_median"],
          "wall_s": round(wall, 1), "d_loss": peer["d_loss"],
          "g_loss": peer["g_loss"]}, samples


def markdown(records):
  rows = ["| framework | seed | weights | steps | img/s | wall s | FID | KID (± SE) | "
          "precision | recall |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in records:
    rows.append(f"| {r['framework']} | {r['seed']} | {r['weights']} | {r['steps']} | "
                f"{r['images_per_s']:,.0f} | "
                f"{r['wall_s']} | {r['fid']:.2f} | {r['kid']:.3f} ± "
                f"{r['kid_standard_error']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} |")
  return "\n".join(rows)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=5000)
  parser.add_argument("--data-dir", default=None, help="TFDS data_dir")
  parser.add_argument("--workdir", default="runs/gan_vs_torch")
  parser.add_argument("--num-samples", type=int, default=10_000)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--frameworks", default="jaxgen,torch",
                      help="comma-separated: jaxgen, torch or both")
  args = parser.parse_args(argv)
  frameworks = args.frameworks.split(",")
  if not frameworks or set(frameworks) - {"jaxgen", "torch"}:
    parser.error(f"--frameworks={args.frameworks}: expected jaxgen, torch or jaxgen,torch")
  if args.steps < 1 or args.num_samples < 2:  # KID needs two samples.
    parser.error(f"--steps={args.steps} --num-samples={args.num_samples}: expected a positive "
                 "number of steps and at least 2 samples")
  check_peer_matches(jaxgen_overrides(args))
  env, prefix = subprocess_env(args.threads)
  features_fn, info = load_feature_network()
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  train_npz = os.path.join(workdir, "fashion_mnist_train.npz")
  np.savez(train_npz, images=split_images(args.data_dir, "train"))
  runs = []
  if "jaxgen" in frameworks:
    runs.append(train_jaxgen(args, os.path.join(workdir, "jaxgen"), env, prefix))
  if "torch" in frameworks:
    runs.append(train_torch(args, train_npz, workdir, env, prefix))

  cfg = config_lib.base_config().evaluation
  test = split_images(args.data_dir, "test")
  real = image_statistics(test, features_fn, cfg.max_stored_features)
  records = []
  for run_record, paths in runs:
    for weights, path in paths.items():
      with np.load(path) as f:
        fake = image_statistics(f["images"], features_fn, cfg.max_stored_features)
      record = dict(run_record, seed=args.seed, batch_size=args.batch_size, weights=weights)
      record.update(num_samples=int(fake["count"]), num_reference=int(real["count"]),
                    feature_network=FEATURE_NETWORK, feature_sha256=info["params_sha256"],
                    **compare(real, fake, cfg, seed=0))
      records.append(record)
      print(json.dumps(record), flush=True)
  if len(runs) == 2:
    print(json.dumps({"ratio_jaxgen_over_torch_images_per_s": round(
        runs[0][0]["images_per_s"] / runs[1][0]["images_per_s"], 3)}))
  print(markdown(records))


if __name__ == "__main__":
  main()
