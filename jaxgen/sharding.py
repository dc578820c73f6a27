"""The device mesh and the rules that place every array of the train state on it.

The mesh has two axes: 'data' (the batch is split over it) and 'model' (parameters may be
split over it). Placement follows ordered regex rules over each leaf's path, EasyLM-style;
a leaf no rule matches is an error, because a silent default hides sharding mistakes.
"""

import re
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxgen.errors import UserError

DATA, MODEL = "data", "model"


def create_mesh(cfg: ml_collections.ConfigDict,
                devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ('data', 'model') mesh over all devices of all processes.

  cfg.model is the parameter-sharding axis size; cfg.data = -1 takes the remaining devices.
  """
  devices = list(devices if devices is not None else jax.devices())
  n_model = cfg.model
  if n_model < 1 or len(devices) % n_model:
    raise UserError(f"mesh.model={n_model}: expected a divisor of the {len(devices)} devices")
  n_data = len(devices) // n_model if cfg.data == -1 else cfg.data
  # A smaller mesh than the machine is allowed on one process (e.g. to compare device counts).
  limit = len(devices) if jax.process_count() > 1 else n_data * n_model
  if n_data < 1 or n_data * n_model != limit or limit > len(devices):
    raise UserError(f"mesh.data={cfg.data} × mesh.model={n_model} does not fit the "
                    f"{len(devices)} devices: set mesh.data=-1 to use all of them")
  devices = devices[:n_data * n_model]
  # Auto axis types: Linen layers do not pass out_sharding, which Explicit meshes demand.
  return jax.make_mesh((n_data, n_model), (DATA, MODEL), axis_types=(AxisType.Auto,) * 2,
                       devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _fsdp_spec(shape: tuple[int, ...], axis_size: int) -> P:
  """Shards the largest dimension divisible by the axis size; small leaves stay replicated."""
  candidates = [d for d in np.argsort(shape)[::-1] if shape[d] % axis_size == 0 and shape[d] > 1]
  if axis_size == 1 or not candidates:
    return P()
  spec = [None] * len(shape)
  spec[candidates[0]] = MODEL
  return P(*spec)


def spec_for(path: str, shape: tuple[int, ...], rules, model_axis_size: int) -> P:
  """The PartitionSpec of the first rule whose regex matches `path`."""
  if not shape:
    return P()  # Scalars (step counters) are always replicated.
  for pattern, spec in rules:
    if re.search(pattern, path):
      if spec == "fsdp":
        return _fsdp_spec(shape, model_axis_size)
      if spec == "replicate":
        return P()
      if len(spec) > len(shape):
        raise UserError(f"sharding rule {pattern!r} → {spec} has more axes than {path} {shape}")
      return P(*spec)
  raise UserError(f"no sharding rule matches {path!r} (shape {shape}): add a rule to "
                  "config.sharding.rules, e.g. ('.*', 'replicate')")


def state_shardings(abstract_state: Any, mesh: Mesh, rules) -> Any:
  """A pytree of NamedShardings matching `abstract_state` (from jax.eval_shape)."""
  model_size = mesh.shape[MODEL]

  def leaf_sharding(path, leaf):
    name = jax.tree_util.keystr(path, simple=True, separator="/")
    return NamedSharding(mesh, spec_for(name, tuple(leaf.shape), rules, model_size))

  return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def constrain_batch(x):
  """Pins an array made inside a step (e.g. latents) to the batch sharding of the current mesh.

  A no-op outside `jax.set_mesh(...)`, so family functions also run unsharded.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA not in mesh.axis_names:
    return x
  return jax.lax.with_sharding_constraint(x, P(DATA))
