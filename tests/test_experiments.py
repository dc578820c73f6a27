"""Every experiment file in every variant it declares, and the builders' checks."""

import glob
import importlib
import os
import runpy
import subprocess
import sys

import pytest

from jaxgen import config as config_lib, experiment
from jaxgen.errors import UserError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(os.path.relpath(path, _ROOT)
               for path in glob.glob(os.path.join(_ROOT, "experiments", "*.py")))
SPECS = [path + (f":{variant}" if variant else "")
         for path in FILES for variant in (None, *config_lib.declared_variants(path))]


def test_every_experiment_file_declares_its_variants():
  assert len(FILES) >= 14
  for path in FILES:
    variants = runpy.run_path(path).get("VARIANTS")
    assert isinstance(variants, tuple) and all(isinstance(v, str) for v in variants), path


@pytest.mark.parametrize("spec", SPECS)
def test_every_variant_loads_and_validates(spec):
  config = config_lib.load(spec, {})  # validate() checks REQUIRED_KEYS and the intervals.
  family = importlib.import_module(f"jaxgen.families.{config.family}")
  # Every knob of the family's sampler is there, of its default's type (an experiment may
  # choose its sampler: DDPM's is DDIM with 50 steps).
  defaults = family.sampling_options()
  assert set(config.sampling) == set(defaults), spec
  assert all(type(config.sampling[k]) is type(v) for k, v in defaults.items()), spec
  path, _, variant = spec.partition(":")
  if variant:  # A declared variant that changes nothing has lost its recipe.
    assert config_lib.differences(config, config_lib.load(path, {})), spec


def test_unknown_variant_names_the_declared_ones():
  with pytest.raises(UserError) as error:
    config_lib.load("experiments/dcgan_fashion_mnist.py:typo", {})
  assert str(error.value) == ("unknown variant 'typo' for experiments/dcgan_fashion_mnist.py: "
                              "expected demo, small")


def test_a_file_without_variants_takes_none(tmp_path):
  path = tmp_path / "plain.py"
  path.write_text("from jaxgen import config\n\n\ndef get_config(arg=None):\n"
                  "  return config.base_config()\n")
  assert config_lib.declared_variants(str(path)) == ()
  with pytest.raises(UserError) as error:
    config_lib.load(f"{path}:small", {})
  assert str(error.value) == f"unknown variant 'small' for {path}: expected no variant"


def test_cli_unknown_variant_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "jaxgen", "train", "--config",
       "experiments/dcgan_fashion_mnist.py:typo", "--workdir", str(workdir)],
      capture_output=True, text=True, timeout=300, cwd=_ROOT)
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "jaxgen: error: unknown variant 'typo' for experiments/dcgan_fashion_mnist.py: "
      "expected demo, small")
  assert not workdir.exists()


def _vae(variant, variants, **kwargs):
  return experiment.vae(variant, variants, model=dict(name="conv_vae", latent_dim=32),
                        small_model=dict(latent_dim=4), **kwargs)


def test_builder_order_settings_then_variant_then_per_variant():
  config = _vae("small", ("small",), total_steps=50, vae=dict(beta=2.0),
                per_variant=dict(small=dict(total_steps=3)))
  assert config.total_steps == 3 and config.vae.beta == 2.0  # smoke_run's 2, then 3.
  assert config.model.latent_dim == 4 and config.data.name == "fashion_mnist_small"
  assert _vae(None, ("small",), total_steps=50).total_steps == 50


def test_builder_rejects_misspelt_keys_and_unbuilt_variants():
  with pytest.raises(KeyError, match="total_step"):
    _vae(None, (), total_step=5)
  with pytest.raises(KeyError, match="vae.bta"):
    _vae(None, (), vae=dict(bta=2.0))
  with pytest.raises(ValueError, match="'long' has no family recipe"):
    _vae(None, ("small", "long"))
  with pytest.raises(ValueError, match="'long' is not among the declared variants"):
    _vae(None, ("small",), per_variant=dict(long=dict(total_steps=5)))
  with pytest.raises(ValueError, match="'demo' is not among the declared variants"):
    _vae("demo", ("small",))


def test_generic_builder_gives_any_family_the_shared_variants():
  model = dict(name="pixelcnn", likelihood="categorical", image_size=28, channels=1,
               features=8, num_blocks=1, kernel_size=3, first_kernel_size=7, head_features=8)
  config = experiment.build("autoregressive", "small", ("demo", "small"), model=model,
                            sections=dict(extra=dict(knob=1)), small_model=dict(features=4),
                            data=dict(normalize="integer"))
  assert config.family == "autoregressive" and config.sampling.temperature == 1.0
  assert config.total_steps == 2 and config.model.features == 4 and config.extra.knob == 1
  demo = experiment.build("autoregressive", "demo", ("demo", "small"), model=model)
  assert demo.data.name == "fashion_mnist_small"
  with pytest.raises(KeyError, match="already has 'model'"):
    experiment.build("autoregressive", None, (), model=model, sections=dict(model={}))
