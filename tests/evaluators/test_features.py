"""The in-domain feature network: shapes, a short training run, and checked save/load."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.evaluators import feature_store, features

from tests.helpers import FEATURE_STEPS


@pytest.fixture(scope="module")
def trained(feature_network):
  """(params, test accuracy) of the suite's short run on the bundled data (conftest)."""
  _, params, test_accuracy = feature_network
  return params, test_accuracy


@pytest.fixture
def saved(trained, tmp_path):
  """(root, info) of the trained network saved as 'fashion_mnist_small' in a fresh root."""
  params, test_accuracy = trained
  info = features.save(params, "fashion_mnist_small", str(tmp_path),
                       dataset="fashion_mnist_small", steps=FEATURE_STEPS,
                       test_accuracy=test_accuracy)
  return str(tmp_path), info


def test_logits_and_features_have_the_documented_shapes():
  model = features.FashionClassifier()
  x = jnp.zeros([3, 28, 28, 1])
  params = model.init(jax.random.key(0), x)
  assert model.apply(params, x).shape == (3, 10)
  assert model.apply(params, x, method=model.features).shape == (3, features.FEATURE_DIM)


def test_short_training_is_well_above_chance(trained):
  _, test_accuracy = trained
  assert test_accuracy > 0.6


def test_round_trip_gives_identical_features(trained, saved):
  params, test_accuracy = trained
  root, info = saved
  features_fn, loaded_info = features.load("fashion_mnist_small", root)
  assert loaded_info == info
  assert loaded_info["test_accuracy"] == test_accuracy
  images = jax.random.uniform(jax.random.key(1), [5, 28, 28, 1], minval=-1.0, maxval=1.0)
  expected = features.FashionClassifier().apply({"params": params}, images,
                                                method=features.FashionClassifier.features)
  np.testing.assert_array_equal(np.asarray(features_fn(images)), np.asarray(expected))


def test_a_tampered_params_file_is_refused(saved):
  root, info = saved
  path = os.path.join(root, "fashion_mnist_small", feature_store.PARAMS_FILE)
  with open(path, "r+b") as f:
    first = f.read(1)
    f.seek(0)
    f.write(bytes([first[0] ^ 1]))
  with pytest.raises(UserError, match="checksum") as raised:
    features.load("fashion_mnist_small", root)
  assert info["params_sha256"] in str(raised.value)


def test_a_missing_network_names_the_command_that_creates_it(tmp_path):
  with pytest.raises(UserError, match="jaxgen train-features") as raised:
    features.load("fashion_mnist", str(tmp_path))
  assert str(tmp_path / "fashion_mnist") in str(raised.value)


def test_the_default_root_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXGEN_FEATURES_DIR", str(tmp_path))
  assert feature_store.default_root() == str(tmp_path)
  monkeypatch.delenv("JAXGEN_FEATURES_DIR")
  assert feature_store.default_root() == os.path.expanduser("~/.cache/jaxgen/features")
