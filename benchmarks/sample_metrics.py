"""Where jaxgen's sample metrics sit: the real-vs-real floor, the noise ceiling, and a run.

  python benchmarks/sample_metrics.py [--data-dir D] [--workdir runs/demo]

With the `fashion_mnist` feature network (`jaxgen train-features --dataset fashion_mnist`):
FID/KID/precision/recall of 10k real train images vs the 10k test images (the floor), of
the test split against itself (~0), and of uniform noise vs test (the ceiling); with
--workdir also that run's samples (`jaxgen evaluate`'s numbers) and the evaluation's wall time.
One JSON line each.
"""

import argparse
import json
import time

import jax
import numpy as np

from jaxgen import config as config_lib, inference
from jaxgen.data import datasets
from jaxgen.evaluators import features
from jaxgen.evaluators.sample_quality import compare, image_statistics


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--num", type=int, default=10_000)
  args = parser.parse_args(argv)
  cfg = config_lib.base_config().evaluation
  data = config_lib.base_config().data
  data.update(dict(name="fashion_mnist", data_dir=args.data_dir))
  features_fn, info = features.load("fashion_mnist")
  test = datasets.load_split(data, "test").images[:args.num]
  train = datasets.load_split(data, "train").images[:args.num]
  noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
  stats = {name: image_statistics(images, features_fn, args.num)
           for name, images in (("test", test), ("train", train), ("noise", noise))}
  common = {"feature_network": "fashion_mnist", "sha256": info["params_sha256"],
            "num_per_side": args.num}
  for name, other in (("train_vs_test", "train"), ("test_vs_test", "test"),
                      ("noise_vs_test", "noise")):
    print(json.dumps({"case": name, **common,
                      **compare(stats["test"], stats[other], cfg, seed=0)}), flush=True)
  if args.workdir:
    start = time.perf_counter()
    config, family, mesh, state = inference.restore(args.workdir)
    metrics = inference.evaluate(config, family, mesh, state)
    print(json.dumps({"case": f"workdir {args.workdir}", "evaluate_seconds":
                      round(time.perf_counter() - start, 1), "devices": jax.device_count(),
                      **metrics}), flush=True)


if __name__ == "__main__":
  main()
