"""The family seam: what the loop, the evaluators and the CLI may call on a family module.

A family is a module of plain functions (vdm's `experiment.py` seam, ported as functions):
its model, its loss inside `train_step`, its sampler and its evaluation. The state itself
(`create_state`, `apply_gradients`) is `jaxgen.train_state`'s, shared by every family.
Optional capabilities are declared by name in the module's `CAPABILITIES`; callers ask
`families.supports(family, name)`, never `hasattr`.
"""

from typing import Any, Protocol

import jax
import ml_collections

from jaxgen.train_state import TrainState

Images = jax.Array  # [num, height, width, channels] in the data's normalised range.
Cond = dict[str, Any] | None  # See `jaxgen.conditioning`.


class Family(Protocol):
  """The functions every family module defines."""

  CAPABILITIES: frozenset[str]  # Names of the optional capabilities below it implements.

  def image_shape(self, config) -> tuple[int, int, int]:
    """(height, width, channels) of the images this config models."""

  def init_state(self, config, rng: jax.Array, image_shape) -> TrainState:
    """A fresh state: the networks' parameters through `train_state.create_state`."""

  def train_step(self, config, state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    """One jitted iteration: the loss, then `train_state.apply_gradients` (given the loss,
    so a non-finite step is not applied); metrics are scalars named 'train/…', among them
    'train/skipped' (1 when any update of the iteration was skipped), which the loop counts
    (`jaxgen.nonfinite`)."""

  def sample(self, config, state: TrainState, rng: jax.Array, num: int,
             cond: Cond = None) -> Images:
    """`num` images drawn as config.sampling says; a conditional model follows `cond`, or
    cycles through its classes when it is None."""

  def eval_metrics(self, config, state: TrainState, batch: dict,
                   rng: jax.Array) -> dict[str, jax.Array]:
    """Per-example values [batch] whose means over the split the evaluator reports."""

  def provenance(self, config) -> dict:
    """{name: str or number}: how eval_metrics' values were computed."""

  def sampling_options(self) -> ml_collections.ConfigDict:
    """config.sampling's defaults: the sampler's knobs, overridable per `jaxgen sample` or
    `jaxgen evaluate` call with --config.sampling.KEY=VALUE."""

  def preview_overrides(self, config) -> dict[str, Any]:
    """{dotted config key: value}: cheaper settings for training-time sample grids and
    evaluations (e.g. fewer IWAE samples); `jaxgen sample` / `evaluate` use the config
    as it is."""


class Interpolates(Protocol):
  """CAPABILITY 'interpolate': a latent space to walk between samples."""

  def interpolate(self, config, state: TrainState, rng: jax.Array, num: int, steps: int,
                  mode: str, cond: Cond = None) -> Images:
    """`num` strips of `steps` images [num * steps, H, W, C], strip after strip."""


class Reconstructs(Protocol):
  """CAPABILITY 'reconstruct': an encoder, so data images have reconstructions."""

  def reconstruct(self, config, state: TrainState, image: Images, rng: jax.Array) -> Images:
    """Each image's reconstruction, [b, H, W, C]."""


class Traverses(Protocol):
  """CAPABILITY 'traverse': latent dimensions to vary one at a time."""

  def traverse(self, config, state: TrainState, rng: jax.Array, num_dims: int,
               steps: int) -> Images:
    """[num_dims * steps, H, W, C]: row d varies latent dimension d."""


CAPABILITIES = {"interpolate": Interpolates, "reconstruct": Reconstructs,
                "traverse": Traverses}


def _functions(protocol) -> list[str]:
  return [name for name, value in vars(protocol).items()
          if callable(value) and not name.startswith("_")]


def check(name: str, module) -> None:
  """Fails unless `module` defines every required function and exactly the capability
  functions it declares (a declared one missing, or one defined but undeclared)."""
  missing = [f for f in _functions(Family) if not callable(getattr(module, f, None))]
  declared = getattr(module, "CAPABILITIES", None)
  if declared is None or missing:
    raise TypeError(f"family {name!r} lacks {missing or ['CAPABILITIES']}")
  unknown = set(declared) - set(CAPABILITIES)
  if unknown:
    raise TypeError(f"family {name!r} declares unknown capabilities {sorted(unknown)}")
  for capability, protocol in CAPABILITIES.items():
    has = all(callable(getattr(module, f, None)) for f in _functions(protocol))
    if has != (capability in declared):
      raise TypeError(f"family {name!r}: capability {capability!r} is "
                      f"{'declared' if capability in declared else 'not declared'} but its "
                      f"functions {_functions(protocol)} are "
                      f"{'missing' if not has else 'defined'}")
