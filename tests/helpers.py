"""Shared test utilities: small configs and reading a workdir back."""

import json
import os

import jax
import numpy as np

from jaxgen import config as config_lib

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
