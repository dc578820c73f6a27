"""Where feature networks live on disk: `<root>/<name>/params.msgpack` plus `info.json`.

Both `features` (the classifier) and `inception` (the FID network) write here, so this holds
nothing of either and imports neither.
"""

import hashlib
import json
import os

from jaxgen import files

PARAMS_FILE = "params.msgpack"
INFO_FILE = "info.json"


def default_root() -> str:
  """$JAXGEN_FEATURES_DIR, else ~/.cache/jaxgen/features, with '~' expanded."""
  return os.path.expanduser(os.environ.get("JAXGEN_FEATURES_DIR", "~/.cache/jaxgen/features"))


def directory(name: str, root: str | None) -> str:
  """The folder of the stored network `name` under `root` (default `default_root()`)."""
  return os.path.join(root or default_root(), name)


def write(data: bytes, name: str, root: str | None, info: dict) -> dict:
  """Writes serialised params and `info` plus their sha256 under `<root>/<name>/`.

  Returns:
    The info written.
  """
  folder = directory(name, root)
  os.makedirs(folder, exist_ok=True)
  info = dict(info, params_sha256=hashlib.sha256(data).hexdigest())
  # Params first: an info.json on disk always vouches for a complete params file.
  _write_bytes(os.path.join(folder, PARAMS_FILE), data)
  _write_bytes(os.path.join(folder, INFO_FILE),
               json.dumps(info, indent=2, sort_keys=True).encode())
  return info


def _write_bytes(path: str, data: bytes) -> None:
  with files.atomic_write(path) as tmp, open(tmp, "wb") as f:
    f.write(data)
