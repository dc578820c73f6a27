"""Shared test utilities: small configs and reading a workdir back."""

import json
import os

import jax
import numpy as np

from jaxgen import config as config_lib

# Steps and batch of the suite's shared feature network (conftest.feature_network): the
# real-vs-real floors of tests/evaluators/test_sample_quality.py hold at this much training
# with wide margins (test accuracy 0.74; real/noise FID 0.003 against < 0.1; precision and
# recall 0.87 against > 0.6), in a quarter of the 100 × 64 images it once took.
FEATURE_STEPS, FEATURE_BATCH = 50, 32

EXPERIMENTS = ("experiments/vae_fashion_mnist.py", "experiments/dcgan_fashion_mnist.py")


def small_config(experiment, data_dir, **overrides):
  """The experiment's `:small` variant on the bundled data in `data_dir`, blocking each step."""
  values = {"data.data_dir": str(data_dir), "max_inflight_steps": "0", "checkpoint_every": "0",
            "sample_every": "0"}
  values.update({k: str(v) for k, v in overrides.items()})
  return config_lib.load(experiment + ":small", values)


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def final_params(workdir):
  from jaxgen import inference
  _, _, _, state = inference.restore(workdir)
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def init_state(family, config, seed=0):
  """family.init_state for config's image shape, jitted: eager, every op of a first init is
  compiled on its own, which takes longer than compiling the whole init (16 s against 6 s
  for the :small U-Net)."""
  shape = family.image_shape(config)
  return jax.jit(lambda rng: family.init_state(config, rng, shape))(jax.random.PRNGKey(seed))


def random_batch(family, config, n=8):
  """n random 8-bit images in config.data.normalize's range, with labels 0, 1, …, 9, 0, …"""
  import jax.numpy as jnp
  from jaxgen import images
  shape = family.image_shape(config)
  pixels = jax.random.randint(jax.random.PRNGKey(1), (n, *shape), 0, 256).astype(jnp.uint8)
  return {"image": images.from_uint8(pixels, config.data.normalize, xp=jnp),
          "label": jnp.arange(n) % 10}


def with_a_nan_weight(state):
  """`state` with its first weight NaN: every loss after it is NaN, whatever the data. For
  a multi-network state (the GAN) the first network's."""
  import jax.numpy as jnp
  leaves, tree = jax.tree.flatten(state.params)
  leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
  return state.replace(params=jax.tree.unflatten(tree, leaves))
