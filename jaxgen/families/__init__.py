"""Model families by the name a config's `family` uses; the seam is `families.protocol`.

The loop, the evaluators and the CLI call only what `protocol.Family` declares, so a
family with its own step (the GAN updates two networks) plugs in without special cases.
Adding a family is its module here and one line in `_FAMILIES`.
"""

import importlib
import types

from jaxgen.errors import UserError
from jaxgen.families import protocol
from jaxgen.kernels import threefry

# Imported on first use: a family module may import this package's helpers without a cycle.
_FAMILIES = {"autoregressive": "jaxgen.families.autoregressive",
             "diffusion": "jaxgen.families.diffusion", "gan": "jaxgen.families.gan",
             "srgan": "jaxgen.families.srgan", "vae": "jaxgen.families.vae"}


def names() -> tuple[str, ...]:
  return tuple(sorted(_FAMILIES))


def get(name: str) -> types.ModuleType:
  """The family module registered as `name`, checked against the protocol."""
  if name not in _FAMILIES:
    raise UserError(f"unknown family {name!r}: expected one of {', '.join(names())}")
  module = importlib.import_module(_FAMILIES[name])
  protocol.check(name, module)
  # Every train, sample and evaluate path gets its family here: from then on this process
  # draws JAX's random bits (the same bits) through the faster CPU lowering.
  threefry.use_unrolled_on_cpu()
  return module


def supports(family: types.ModuleType, capability: str) -> bool:
  """Whether `family` implements the optional capability (see `protocol.CAPABILITIES`)."""
  if capability not in protocol.CAPABILITIES:
    raise ValueError(f"unknown capability {capability!r}")
  return capability in family.CAPABILITIES


def preview_config(family: types.ModuleType, config):
  """`config` with the family's cheaper training-time settings (`preview_overrides`)."""
  overrides = family.preview_overrides(config)
  if not overrides:
    return config
  config = config.copy_and_resolve_references()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  config.lock()
  return config


def model_image_shape(config) -> tuple[int, int, int]:
  """(height, width, channels) from config.model's image_size and channels: the families
  whose one network sees the images directly."""
  return (config.model.image_size, config.model.image_size, config.model.channels)


def sampling(config):
  """config.sampling over the family's `sampling_options()`: every knob, at its default where
  the config (a run saved before the knob existed, a hand-written experiment) lacks it."""
  opts = get(config.family).sampling_options()
  opts.update(config.sampling)
  return opts


def with_sampling_defaults(config):
  """`config` with every config.sampling knob of its family present, so what a run samples
  with is also what its config and provenance say."""
  defaults = get(config.family).sampling_options()
  missing = [key for key in defaults if key not in config.sampling]
  if missing:
    with config.unlocked():
      for key in missing:
        config.sampling[key] = defaults[key]
  return config


def sampling_provenance(config) -> dict:
  """{'sampling/KEY': value} for every config.sampling knob the samples were drawn with."""
  return {f"sampling/{key}": value for key, value in sorted(config.sampling.items())}
