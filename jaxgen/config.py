"""Experiment configs: load a Python config file, apply `--config.KEY=VALUE` overrides, validate.

Configs are `ml_collections.ConfigDict`s returned by `get_config(arg=None)` in a file under
`experiments/`. They are locked after loading, so a misspelt key is an error, not a silent
new field.
"""

import ast
import importlib.util
import json
import os

import ml_collections

from jaxgen.errors import UserError

# Every experiment must define these, because tools drive the CLI through them.
REQUIRED_KEYS = ("seed", "batch_size", "total_steps", "log_every", "checkpoint_every",
                 "sample_every", "eval_every", "data.name", "family")


def load_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` by calling its `get_config(variant)`."""
  path, _, arg = spec.partition(":")
  module = _load_module(path)
  variants = _variants(module)
  if arg and arg not in variants:
    raise UserError(f"unknown variant {arg!r} for {path}: expected "
                    f"{', '.join(variants) if variants else 'no variant'}")
  config = module.get_config(arg or None)
  if not isinstance(config, ml_collections.ConfigDict):
    raise UserError(f"get_config() in {path!r} returned {type(config).__name__}, "
                    "expected a ConfigDict")
  return config


def declared_variants(path: str) -> tuple[str, ...]:
  """The variants the config file at `path` accepts after its `:`, in its declared order."""
  return _variants(_load_module(path))


def _variants(module):
  return tuple(getattr(module, "VARIANTS", ()))  # A file without VARIANTS takes none.


def _load_module(path: str):
  """Executes the config file at `path`; a missing or broken file is a UserError."""
  if not os.path.isfile(path):
    raise UserError(f"config file {path!r} does not exist: pass --config experiments/NAME.py "
                    f"(available: {', '.join(sorted(_experiments())) or 'none found'})")
  module_spec = importlib.util.spec_from_file_location("jaxgen_experiment_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # A broken config file is the user's to fix; say where.
    raise UserError(f"config file {path!r} failed to load: {type(e).__name__}: {e}") from e
  if not hasattr(module, "get_config"):
    raise UserError(f"config file {path!r} defines no get_config(): add one returning a ConfigDict")
  return module


def _experiments():
  root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
  return [f for f in os.listdir(root) if f.endswith(".py")] if os.path.isdir(root) else []


def parse_value(text: str, current):
  """Parses an override string into the type of the value it replaces."""
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ValueError(f"expected true/false, got {text!r}")
  if isinstance(current, str):
    return text
  if text.lower() == "none":
    return None
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise ValueError(f"expected a {type(current).__name__}, got {text!r}") from None
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if current is not None and not isinstance(value, type(current)):
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
      return type(current)(value)
    raise ValueError(f"expected a {type(current).__name__}, got {text!r}")
  return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
  """Sets dotted keys in place; an unknown key or an unparsable value is a UserError."""
  for key, text in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise UserError(_unknown_key(key, ".".join(parents[:i]), node))
      node = node[part]
    if leaf not in node:
      raise UserError(_unknown_key(key, ".".join(parents), node))
    try:
      value = parse_value(text, node[leaf])
    except ValueError as e:
      raise UserError(f"bad value for --config.{key}: {e}") from None
    with node.ignore_type():
      node[leaf] = value


def _unknown_key(key, prefix, node):
  where = f"under '{prefix}'" if prefix else "at the top level"
  return (f"unknown config key {key!r}: valid keys {where} are "
          f"{', '.join(sorted(node.keys()))}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the keys every experiment must have and the values the loop relies on."""
  for key in REQUIRED_KEYS:
    node = config
    for part in key.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise UserError(f"config is missing required key {key!r}: every experiment defines "
                        f"{', '.join(REQUIRED_KEYS)}")
      node = node[part]
  for key in ("batch_size", "total_steps", "log_every", "checkpoint_every", "sample_every",
              "eval_every"):
    value = config[key]
    if not isinstance(value, int) or value < (1 if key in ("batch_size", "total_steps") else 0):
      raise UserError(f"config.{key}={value!r}: expected a non-negative integer "
                      f"(batch_size and total_steps ≥ 1; 0 disables an interval)")
  for key, low in (("eval_batch_size", 1), ("num_samples", 1), ("keep_checkpoints", 1),
                   ("max_inflight_steps", 0), ("max_consecutive_skips", 1)):
    value = config.get(key, low)
    if not isinstance(value, int) or value < low:
      raise UserError(f"config.{key}={value!r}: expected an integer ≥ {low}")
  if not 0.0 <= config.get("ema_decay", 0.0) < 1.0:
    raise UserError(f"config.ema_decay={config.ema_decay!r}: expected 0 (off) or a decay in "
                    "(0, 1), such as 0.999")
  for name, optim in _optim_configs(config):
    rate = optim.get("learning_rate")
    if rate is not None and not (isinstance(rate, (int, float)) and 0 < rate < float("inf")):
      raise UserError(f"config.{name}.learning_rate={rate!r}: expected a positive finite "
                      "number, such as 1e-3")


def _optim_configs(config):
  """(dotted name, optimizer config) of the run's one optimizer or of each network's."""
  optim = config.get("optim")
  if not isinstance(optim, ml_collections.ConfigDict):
    return []
  if "learning_rate" in optim:
    return [("optim", optim)]
  return [(f"optim.{net}", sub) for net, sub in optim.items()
          if isinstance(sub, ml_collections.ConfigDict)]


def load(spec: str, overrides: dict[str, str]) -> ml_collections.ConfigDict:
  """Loads, overrides, validates and locks a config."""
  config = load_file(spec)
  apply_overrides(config, overrides)
  validate(config)
  config.lock()
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """A saved config, on top of today's base defaults: runs saved before a knob existed
  still restore, with that knob at its default."""
  config = base_config()
  with config.ignore_type():  # JSON turned tuples into lists.
    config.update(ml_collections.ConfigDict(json.loads(text)))
  config.lock()
  return config


def run_config_path(workdir: str) -> str:
  """Where a run keeps its config: the file that makes WORKDIR a jaxgen run."""
  return os.path.join(workdir, "config.json")


def require_run(workdir: str) -> None:
  """Fails unless WORKDIR holds a run. Light (no jax, orbax or TensorFlow import), so that
  `jaxgen sample` on a wrong folder answers in about a second rather than ten."""
  if not os.path.exists(run_config_path(workdir)):
    raise UserError(f"{workdir!r} holds no jaxgen run (no config.json): train one with "
                    "`jaxgen train --config experiments/X.py --workdir DIR` first")


def differences(a: ml_collections.ConfigDict, b: ml_collections.ConfigDict) -> list[str]:
  """Dotted keys whose values differ between two configs (for the resume warning)."""
  flat_a, flat_b = _flatten(json.loads(to_json(a))), _flatten(json.loads(to_json(b)))
  return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k))


def _flatten(tree, prefix=""):
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for k, v in tree.items():
    out.update(_flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}"))
  return out


def split_override_args(argv: list[str]) -> tuple[list[str], dict[str, str]]:
  """Separates `--config.KEY=VALUE` (or `--config.KEY VALUE`) arguments from the rest."""
  rest, overrides = [], {}
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise UserError(f"{arg} needs a value: write --config.{key}=VALUE")
        value, i = argv[i + 1], i + 1
      overrides[key] = value
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def base_config() -> ml_collections.ConfigDict:
  """The loop's keys with working defaults; experiments add family, model, data and optim."""
  return ml_collections.ConfigDict(dict(
      family="",
      seed=0,
      batch_size=64,           # Global: split over all devices of all processes.
      eval_batch_size=256,     # Global; the last batch of a split is padded and masked.
      total_steps=1000,
      log_every=50,
      checkpoint_every=500,
      sample_every=500,
      eval_every=0,            # 0: never during training (run `jaxgen evaluate` after).
      num_samples=64,          # Images in each sample grid (super-resolution: originals).
      keep_checkpoints=3,
      max_inflight_steps=2,    # How far the host may run ahead of the device.
      # Steps in a row with a non-finite loss or gradients (each skipped, not applied) after
      # which the run stops without saving: see jaxgen/nonfinite.py.
      max_consecutive_skips=20,
      ema_decay=0.0,           # 0 turns parameter EMA off.
      # A workdir whose latest parameters (and model state) start this run; the step and
      # the optimizer start afresh. For fine-tuning, e.g. an ELBO-trained VAE on the IWAE
      # bound. Ignored once this run has its own checkpoint, so resuming continues it.
      init_from="",
      # How samples are drawn: the family's knobs (`sampling_options()` in its module), set
      # by the experiment builder; `jaxgen sample` / `evaluate` override them per call.
      sampling=dict(),
      mesh=dict(data=-1, model=1),
      # Sample metrics (FID, KID, precision/recall) for families that sample. They need the
      # feature network `jaxgen train-features --dataset NAME` makes; training skips them
      # with a warning when it is missing, `jaxgen evaluate` stops with an error.
      evaluation=dict(sample_metrics=False, feature_network="fashion_mnist", features_dir="",
                      num_samples=10_000, max_stored_features=10_000, kid_subsets=100,
                      kid_subset_size=1000, pr_k=3,
                      # IWAE-k NLL bound for likelihood families: k for `jaxgen evaluate`
                      # reports, and (cheaper) during training; 0 turns it off.
                      iwae_k=1000, iwae_k_during_training=0),
      # Ordered (regex, spec) over state leaf paths such as 'params/generator/Dense_0/kernel';
      # spec: 'replicate', 'fsdp' (largest divisible dim over 'model'), or a tuple of mesh
      # axis names / None per dimension. A leaf no rule matches is an error.
      sharding=dict(rules=((".*", "replicate"),)),
      data=dict(
          name="fashion_mnist_small", data_dir=None,
          manual_dir="/usr/share/datasets/fashion-mnist", folder="",
          # name='prepared': a `jaxgen prepare-data` directory, streamed through Grain by
          # read_threads threads (the training split is never held in memory).
          prepared_dir="", read_threads=16,
          # A file of record names to leave out (the exclusion list `jaxgen audit-data`
          # writes); prepared data applies one at preparation (prepare-data --exclude).
          exclude="",
          # Per-image vectors a model conditions on (jaxgen/data/attributes.py): a CSV of
          # binary attributes (image,NAME_1,...), an .npz of embeddings, or 'tfds' for the
          # dataset's own attributes (CelebA's); "" for none.
          attributes="",
          train_split="train", eval_split="test", image_size=None, crop="center",
          channels=None, normalize="symmetric", dequantize=False, shuffle=True, prefetch=2,
          augment=dict(flip=False, rotation=0.0, zoom=0.0, translate=0.0)),
  ))
