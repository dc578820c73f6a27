"""Flax Linen models, registered by the name a config's `model.name` uses.

Each model registers its example inputs with its name, so code that must initialise any
model by name (the golden parameter-count test, shape inference) never guesses the call
from the name.
"""

import importlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError

# fn(module, batch) -> (args, kwargs) with which `module.init(rng, *args, **kwargs)` creates
# every parameter, for `batch` examples shaped by the module's own fields.
ExampleInputs = Callable[[nn.Module, int], tuple[tuple, dict[str, Any]]]


class _Entry(NamedTuple):
  cls: type
  example_inputs: ExampleInputs


_REGISTRY: dict[str, _Entry] = {}

# model.dtype: the computation dtype. Parameters (and so the optimizer state) stay float32, and
# each model computes normalisation statistics, likelihood parameters and logits in float32.
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  """The jnp dtype of model.dtype `name`."""
  if name not in _DTYPES:
    raise UserError(f"model.dtype={name!r}: expected one of {', '.join(_DTYPES)} (the "
                    "computation dtype; parameters stay float32)")
  return _DTYPES[name]


def config_kwargs(model_config) -> dict[str, Any]:
  """config.model as keyword arguments of a module, its `dtype` name made a jnp dtype."""
  kwargs = dict(model_config)
  if "dtype" in kwargs:
    kwargs["dtype"] = compute_dtype(kwargs["dtype"])
  return kwargs


def register(name: str, *, example_inputs: ExampleInputs) -> Callable[[type], type]:
  """Class decorator: makes the module class available as `get(name)`.

  Args:
    name: the config's `model.name`.
    example_inputs: fn(module, batch) -> (args, kwargs) for `module.init(rng, *args,
      **kwargs)`. Required, so that every registered model can be initialised, and so
      tested, by its name alone.
  """
  if not callable(example_inputs):
    raise TypeError(f"model {name!r}: example_inputs={example_inputs!r} is not callable; pass "
                    "fn(module, batch) -> (args, kwargs) for module.init")

  def decorate(cls: type) -> type:
    if name in _REGISTRY:
      raise ValueError(f"model name {name!r} is registered twice: {_REGISTRY[name].cls} and "
                       f"{cls}")
    _REGISTRY[name] = _Entry(cls, example_inputs)
    return cls
  return decorate


def get(name: str) -> type:
  """The module class registered as `name`."""
  _load_all()
  if name not in _REGISTRY:
    raise UserError(f"unknown model {name!r}: expected one of {', '.join(names())}; "
                    "set model.name in the config to one of these")
  return _REGISTRY[name].cls


def names() -> tuple[str, ...]:
  """Every registered model name, sorted."""
  _load_all()
  return tuple(sorted(_REGISTRY))


def example_inputs(name: str, module: nn.Module, batch: int = 2) -> tuple[tuple, dict[str, Any]]:
  """(args, kwargs) of `module.init(rng, *args, **kwargs)` for `batch` examples.

  `module` is an instance of `get(name)`; its fields (image size, channels, latent size,
  classes) shape the inputs, which are zeros (and labels 0 for a conditional model).
  """
  cls = get(name)
  if not isinstance(module, cls):
    raise TypeError(f"example_inputs({name!r}, ...) got a {type(module).__name__}: expected "
                    f"an instance of {cls.__name__}, the module registered as {name!r}")
  return _REGISTRY[name].example_inputs(module, batch)


def param_count(name: str, **kwargs) -> int:
  """Parameters of `get(name)(**kwargs)`, counted from shapes alone (nothing is allocated)."""
  module = get(name)(**kwargs)

  def init():
    args, call_kwargs = example_inputs(name, module)
    return module.init(jax.random.PRNGKey(0), *args, **call_kwargs)

  shapes = jax.eval_shape(init)
  return sum(math.prod(p.shape) for p in jax.tree.leaves(shapes["params"]))



# Each registers its models with `register` when imported. Imported on first lookup, not
# here: they import this package for the decorator, and an import here would be a cycle.
_MODULES = ("dcgan", "hvae", "pixelcnn", "pixelcnnpp", "resnet_gan", "rowlstm", "srresnet", "unet",
            "vae", "vqvae")


def _load_all() -> None:
  for module in _MODULES:
    importlib.import_module(f"jaxgen.models.{module}")
