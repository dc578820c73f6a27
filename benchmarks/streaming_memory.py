"""Peak RSS of `jaxgen train` streaming a prepared dataset of >= 1 GB decoded, against the
same run on one 10x smaller: streaming must not grow with the data.

  python benchmarks/streaming_memory.py [--num 90000] [--size 64] [--steps 30]

Writes two prepared datasets of random 64x64 RGB images straight into ArrayRecord shards
(raw encoding, so writing is quick; the manifest is prepare-data's), then trains the DCGAN
at 64x64 RGB on each for a few steps in a child process and reads the child's peak resident
memory (ru_maxrss). One JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter

from jaxgen.data import prepared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(out: str, num: int, size: int, shard_size: int = 10_000) -> float:
  """A prepared dataset of `num` random size x size RGB images; returns GB decoded."""
  os.makedirs(out)
  rng = np.random.default_rng(0)
  shards, count = [], -(-num // shard_size)
  for i in range(count):
    file = f"train-{i:05d}-of-{count:05d}.array_record"
    writer = ArrayRecordWriter(os.path.join(out, file), "group_size:1")
    n = min(shard_size, num - i * shard_size)
    for image in rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8):
      writer.write(prepared.encode(image, 0, "raw"))
    writer.close()
    shards.append(dict(file=file, num_examples=n))
  manifest = dict(format=prepared.FORMAT, version=prepared.VERSION, tool="benchmark",
                  source="random", image_shape=[size, size, 3], encoding="raw",
                  label_names=[], splits={"train": dict(num_examples=num, shards=shards,
                                                        class_counts={"0": num}, corrupt=[])})
  with open(os.path.join(out, prepared.MANIFEST), "w") as f:
    json.dump(manifest, f)
  return num * size * size * 3 / 1e9


def _peak_rss_mib(prepared_dir: str, workdir: str, size: int, steps: int) -> tuple[float, float]:
  """(peak RSS MiB, seconds) of a child `jaxgen train` on the prepared data."""
  start = time.perf_counter()
  child = subprocess.run(
      [sys.executable, "-c", "import resource, sys; from jaxgen.main import run; "
       "code = run(sys.argv[1:]); "
       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
       "train", "--config", "experiments/dcgan_fashion_mnist.py", "--workdir", workdir,
       "--config.data.name=prepared", f"--config.data.prepared_dir={prepared_dir}",
       f"--config.model.generator.image_size={size}", "--config.model.generator.channels=3",
       f"--config.model.discriminator.image_size={size}",
       "--config.model.discriminator.channels=3", f"--config.total_steps={steps}",
       "--config.sample_every=0", "--config.checkpoint_every=0", "--config.eval_every=0",
       "--config.evaluation.sample_metrics=False", "--config.log_every=10"],
      cwd=ROOT, capture_output=True, text=True, check=True)
  return int(child.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num", type=int, default=90_000)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=30)
  args = parser.parse_args(argv)
  result = {"image_size": args.size, "steps": args.steps}
  with tempfile.TemporaryDirectory() as tmp:
    for name, num in (("large", args.num), ("small", args.num // 10)):
      gb = _write(os.path.join(tmp, name), num, args.size)
      rss, seconds = _peak_rss_mib(os.path.join(tmp, name), os.path.join(tmp, f"run_{name}"),
                                   args.size, args.steps)
      result[name] = {"images": num, "decoded_gb": round(gb, 3), "peak_rss_mib": round(rss),
                      "train_s": round(seconds, 1)}
  result["rss_difference_mib"] = result["large"]["peak_rss_mib"] - result["small"][
      "peak_rss_mib"]
  print(json.dumps(result))


if __name__ == "__main__":
  sys.exit(main())
