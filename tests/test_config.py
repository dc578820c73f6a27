"""Config loading, overrides and validation."""

import json

import pytest

from jaxgen import config as config_lib
from jaxgen.errors import UserError

VAE = "experiments/vae_fashion_mnist.py"


def test_every_experiment_has_the_required_keys_in_every_variant():
  for spec in ("experiments/vae_fashion_mnist.py", "experiments/dcgan_fashion_mnist.py"):
    for variant in ("", ":demo", ":small"):
      config = config_lib.load(spec + variant, {})  # validate() checks REQUIRED_KEYS
      assert config.family in ("gan", "vae") and config.data.name


def test_overrides_are_typed_and_nested():
  config = config_lib.load(VAE + ":small", {"total_steps": "7", "data.augment.flip": "true",
                                            "optim.learning_rate": "3e-4",
                                            "data.image_size": "32"})
  assert config.total_steps == 7 and config.data.augment.flip is True
  assert config.optim.learning_rate == pytest.approx(3e-4)
  assert config.data.image_size == 32


@pytest.mark.parametrize("key,value,match", [
    ("total_step", "3", "unknown config key 'total_step'.*total_steps"),
    ("data.nmae", "x", "unknown config key 'data.nmae'.*name"),
    ("nodata.name", "x", "unknown config key 'nodata.name'"),
    ("total_steps", "many", "bad value for --config.total_steps"),
    ("data.augment.flip", "maybe", "expected true/false"),
])
def test_bad_overrides_name_the_problem(key, value, match):
  with pytest.raises(UserError, match=match):
    config_lib.load(VAE, {key: value})


def test_config_is_locked_against_new_keys():
  config = config_lib.load(VAE, {})
  with pytest.raises(AttributeError):
    config.new_key = 1


def test_missing_file_and_negative_interval_are_user_errors():
  with pytest.raises(UserError, match="does not exist"):
    config_lib.load("experiments/nope.py", {})
  with pytest.raises(UserError, match="log_every"):
    config_lib.load(VAE, {"log_every": "-1"})


def test_json_round_trip_and_differences():
  config = config_lib.load(VAE, {})
  again = config_lib.from_json(config_lib.to_json(config))
  assert config_lib.differences(config, again) == []
  changed = config_lib.load(VAE, {"seed": "3"})
  assert config_lib.differences(config, changed) == ["seed"]


def test_a_saved_config_without_newer_keys_gets_their_defaults():
  saved = json.loads(config_lib.to_json(config_lib.load(VAE, {"seed": "5"})))
  del saved["evaluation"]
  restored = config_lib.from_json(json.dumps(saved))
  assert restored.seed == 5 and restored.model.name == "conv_vae"
  assert restored.evaluation.pr_k == config_lib.base_config().evaluation.pr_k


def test_split_override_args():
  rest, overrides = config_lib.split_override_args(
      ["train", "--config", "x.py", "--config.seed=3", "--config.data.name", "cifar10"])
  assert rest == ["train", "--config", "x.py"]
  assert overrides == {"seed": "3", "data.name": "cifar10"}
