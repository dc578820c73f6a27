"""Regenerates the bundled Fashion-MNIST subset from the original IDX files.

  python jaxgen/data/bundled/make_bundled.py [SOURCE_DIR]

SOURCE_DIR holds the four original `*-ubyte.gz` files (default: Debian's
dataset-fashion-mnist, /usr/share/datasets/fashion-mnist). Writes the first 10,000 train
and first 2,000 test records, as gzipped IDX files with the original names, next to this
script. The gzip header carries no name or time, so reruns give identical bytes.
"""

import gzip
import math
import os
import struct
import sys

SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_small")
COUNTS = {"train": 10_000, "t10k": 2_000}


def subset_idx(data: bytes, count: int) -> bytes:
  """The first `count` records of an IDX file, with the header's record count rewritten."""
  num_dims = data[3]
  dims = struct.unpack(f">{num_dims}I", data[4:4 + 4 * num_dims])
  if count > dims[0]:
    raise ValueError(f"asked for {count} records, the file has {dims[0]}")
  record_size = math.prod(dims[1:])
  header_size = 4 + 4 * num_dims
  header = data[:4] + struct.pack(f">{num_dims}I", count, *dims[1:])
  return header + data[header_size:header_size + count * record_size]


def write_gzip(path: str, data: bytes) -> None:
  with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                              compresslevel=9, mtime=0) as f:
    f.write(data)


def main(source_dir: str) -> None:
  os.makedirs(OUT_DIR, exist_ok=True)
  for prefix, count in COUNTS.items():
    for kind in ("images-idx3", "labels-idx1"):
      name = f"{prefix}-{kind}-ubyte.gz"
      with gzip.open(os.path.join(source_dir, name), "rb") as f:
        data = f.read()
      write_gzip(os.path.join(OUT_DIR, name), subset_idx(data, count))
      print(f"wrote {name}: {count} records")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else SOURCE_DIR)
