"""Cost of a VAE's IWAE-k NLL evaluation, as one JSON object.

  python benchmarks/iwae_eval.py --config experiments/hvae_binarized_fashion_mnist.py \
      [--k 100] [--batch 64] [--repeats 5] [--config.KEY=VALUE ...]

Times the jitted bound (`families.vae.negative_iwae`) on one in-memory batch with random
weights, the way `jaxgen evaluate --config.evaluation.iwae_k=K` computes it per batch, and
reports XLA's FLOPs, the median seconds, images/s and what the 10,000-image test set would
take at that rate. Use it to choose k before a long evaluation.
"""

import argparse
import json
import statistics
import sys
import time

import jax

from jaxgen import sharding
from jaxgen.families import vae

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from throughput import _flops, parse_config, synthetic_batch  # noqa: E402  (a sibling script)


def measure(config, k: int, batch: int, repeats: int) -> dict:
  config.batch_size = batch
  state = vae.init_state(config, jax.random.PRNGKey(0), vae.image_shape(config))
  image = synthetic_batch(config, vae, sharding.create_mesh(config.mesh))["image"]
  bound = jax.jit(lambda params, x: vae.negative_iwae(config, params, x,
                                                      jax.random.PRNGKey(1), k,
                                                      state.model_state))
  compiled = bound.lower(state.params, image).compile()
  jax.block_until_ready(compiled(state.params, image))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(state.params, image))
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  flops = _flops(compiled)
  return {"model": config.model.name, "iwae_k": k, "batch": batch,
          "gflops_per_batch": round(flops / 1e9, 3) if flops else None,
          "median_s_per_batch": round(seconds, 4), "images_per_s": round(batch / seconds, 2),
          "test_set_10k_minutes": round(10_000 / (batch / seconds) / 60, 1)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--k", type=int, default=100)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  args, config = parse_config(parser, argv)
  print(json.dumps({"config": args.config, **measure(config, args.k, args.batch,
                                                      args.repeats)}))


if __name__ == "__main__":
  sys.exit(main())
