"""Images/s of the training input pipeline: prepared data streamed through Grain, against the
same images held in RAM, one JSON line per case.

  python benchmarks/input_pipeline.py [--sizes 32,64] [--num 4096] [--batch 128]
      [--threads 1,2] [--batches 40]

Writes a folder of random RGB PNGs per size (random pixels: PNG cannot compress them, so
decoding costs what it costs on photographs of that size or more), prepares it with
`jaxgen prepare-data`'s code, then times batches of the pipeline `jaxgen train` builds:
decode (streamed only), flip + rotation + zoom in one batched affine warp, normalise.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from jaxgen import config as config_lib
from jaxgen.data import datasets, input_pipeline, prepare, prepared


def _folder(root: str, size: int, num: int) -> None:
  rng = np.random.default_rng(0)
  for i in range(num):
    label = f"c{i % 10}"
    os.makedirs(os.path.join(root, "train", label), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        os.path.join(root, "train", label, f"{i:06d}.png"))


def _rate(data, source, batch: int, batches: int) -> float:
  ds = input_pipeline.train_dataset(data, source, local_batch_size=batch, seed=0,
                                    start_step=0)
  it = ds.as_numpy_iterator()
  for _ in range(3):  # Warm-up: threads started, first records read.
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batch * batches / (time.perf_counter() - start)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="32,64")
  parser.add_argument("--num", type=int, default=4096)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--threads", default="1,2")
  parser.add_argument("--batches", type=int, default=40)
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as tmp:
    for size in map(int, args.sizes.split(",")):
      root, out = os.path.join(tmp, f"png{size}"), os.path.join(tmp, f"prepared{size}")
      _folder(root, size, args.num)
      start = time.perf_counter()
      prepare.prepare(out, folder=root, workers=2)
      prepare_s = time.perf_counter() - start
      for threads in map(int, args.threads.split(",")):
        data = config_lib.load("experiments/sngan_cifar10.py", {
            "data.name": "prepared", "data.prepared_dir": out, "data.read_threads": str(threads),
            "data.augment.rotation": "10.0", "data.augment.zoom": "0.1"}).data
        streamed = _rate(data, prepared.open_split(out, "train"), args.batch, args.batches)
        in_ram = _rate(data, datasets.load_split(data, "train"), args.batch, args.batches)
        print(json.dumps({"image_size": size, "channels": 3, "images": args.num,
                          "batch": args.batch, "read_threads": threads,
                          "prepare_s": round(prepare_s, 1),
                          "streamed_images_per_s": round(streamed),
                          "in_ram_images_per_s": round(in_ram),
                          "streamed_over_in_ram": round(streamed / in_ram, 3)}), flush=True)


if __name__ == "__main__":
  sys.exit(main())
