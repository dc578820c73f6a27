"""Flax Linen models, registered by the name a config's `model.name` uses."""

from collections.abc import Callable

from jaxgen.errors import UserError

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
  """Class decorator: makes the module class available as `get(name)`."""
  def decorate(cls: type) -> type:
    if name in _REGISTRY:
      raise ValueError(f"model name {name!r} is registered twice: {_REGISTRY[name]} and {cls}")
    _REGISTRY[name] = cls
    return cls
  return decorate


def get(name: str) -> type:
  """The module class registered as `name`."""
  if name not in _REGISTRY:
    raise UserError(f"unknown model {name!r}: expected one of {', '.join(names())}; "
                    "set model.name in the config to one of these")
  return _REGISTRY[name]


def names() -> tuple[str, ...]:
  """Every registered model name, sorted."""
  return tuple(sorted(_REGISTRY))


# Imported last: each registers its models with the decorator defined above.
from jaxgen.models import dcgan, hvae, pixelcnn, resnet_gan, rowlstm, vae, vqvae  # noqa: E402,F401
