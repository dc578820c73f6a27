"""Prompts: the words a user samples a conditional model with, mapped to its conditioning.

A class-conditional model's vocabulary is its dataset's own class names (TFDS ClassLabel
names, a folder dataset's label folders, a prepared dataset's manifest), recorded in the
workdir when training starts (`labels.json`), so a run samples by name on a machine without
its data. Matching ignores case and punctuation, and a name with alternatives
("T-shirt/top") answers to each of them ("t-shirt", "top") as well as to the whole.

A model conditioned on attributes (model.num_attributes > 0) takes a comma-separated prompt,
"Smiling,Eyeglasses": each part one of the attribute names of its data.attributes table
(also recorded in labels.json), or, on a model with classes too, at most one class name.
"""

import json
import os
import re

import numpy as np

from jaxgen import conditioning, files
from jaxgen.errors import UserError

LABELS_FILE = "labels.json"


def labels_path(workdir: str) -> str:
  return os.path.join(workdir, LABELS_FILE)


def write_label_names(workdir: str, names: list[str],
                      attribute_names: list[str] | None = None) -> None:
  """Records the run's class (and attribute) names, atomically: a crash never leaves half a
  file."""
  with files.atomic_write(labels_path(workdir)) as tmp, open(tmp, "w") as f:
    json.dump({"label_names": list(names), "attribute_names": list(attribute_names or [])}, f)


def read_attribute_names(workdir: str, config) -> list[str]:
  """The attribute names of WORKDIR's run (labels.json, else its data.attributes table)."""
  if os.path.exists(labels_path(workdir)):
    with open(labels_path(workdir)) as f:
      found = json.load(f).get("attribute_names")
    if found:
      return list(found)
  from jaxgen.data import attributes  # TensorFlow: only for runs without labels.json.
  return attributes.attribute_names(config.data)


def read_label_names(workdir: str, config) -> list[str]:
  """The class names of WORKDIR's run: its labels.json, else (runs trained before jaxgen
  recorded them) the dataset's metadata; [] when neither names the classes."""
  if os.path.exists(labels_path(workdir)):
    with open(labels_path(workdir)) as f:
      return list(json.load(f)["label_names"])
  from jaxgen.data import datasets  # TensorFlow: only for runs without labels.json.
  return datasets.label_names(config.data)


def normalise(text: str) -> str:
  """Lower case, every run of non-alphanumerics one space: 'T-shirt' → 't shirt'."""
  return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _spellings(name: str) -> set[str]:
  """The whole name and each '/'-separated alternative, normalised."""
  return {normalise(name)} | {normalise(part) for part in name.split("/") if normalise(part)}


def label_of(prompt: str, names: list[str], config) -> int:
  """The class index `prompt` names, for a class-conditional model with classes `names`.

  Raises:
    UserError: the model is unconditional, its run recorded no class names, or the prompt
      is not one of them (the message lists the vocabulary).
  """
  classes = conditioning.num_classes(config)
  if not classes:
    raise UserError(f"--prompt {prompt!r}: this {config.family} model is unconditional; "
                    "train with model.num_classes > 0 to sample by class name")
  if len(names) != classes:
    raise UserError(f"--prompt {prompt!r}: the run's dataset names {len(names)} classes but "
                    f"the model has {classes}; sample by index with --label 0..{classes - 1}")
  wanted = normalise(prompt)
  found = [i for i, name in enumerate(names) if wanted and wanted in _spellings(name)]
  if len(found) != 1:
    why = "matches several classes" if found else "is not a class name"
    raise UserError(f"--prompt {prompt!r} {why}; the vocabulary: {_vocabulary(names)}")
  return found[0]


def condition_of(prompt: str, workdir: str, config) -> tuple[int | None, np.ndarray | None]:
  """(label, attributes float32 [A]) that `prompt` names for WORKDIR's model: a class name
  (`label_of`) for a class-conditional model; comma-separated attribute names, and at most
  one class name, for a model with attributes (the others 0: absent)."""
  count = conditioning.num_attributes(config)
  if not count:
    return label_of(prompt, read_label_names(workdir, config), config), None
  names = read_attribute_names(workdir, config)
  if not names:
    raise UserError(f"--prompt {prompt!r}: this run's data.attributes names no attributes "
                    "(an embedding table); prompts need a CSV table's named attributes")
  if len(names) != count:
    raise UserError(f"--prompt {prompt!r}: the run names {len(names)} attributes but the "
                    f"model has {count}; retrain with its data.attributes table")
  classes = read_label_names(workdir, config) if conditioning.num_classes(config) else []
  by_name = {normalise(name): i for i, name in enumerate(names)}
  vector, label = np.zeros((count,), np.float32), None
  parts = [p for p in prompt.split(",") if normalise(p)]
  if not parts:
    raise UserError(f"--prompt {prompt!r} names nothing; the vocabulary: "
                    f"{_vocabulary([*names, *classes])}")
  for part in parts:
    if normalise(part) in by_name:
      vector[by_name[normalise(part)]] = 1.0
    elif any(normalise(part) in _spellings(c) for c in classes):
      if label is not None:
        raise UserError(f"--prompt {prompt!r}: {part.strip()!r} is a second class name; "
                        "name at most one class")
      label = label_of(part, classes, config)
    else:
      raise UserError(f"--prompt {prompt!r}: {part.strip()!r} is not an attribute"
                      + (" or class" if classes else "") + " name; the vocabulary: "
                      + _vocabulary([*names, *classes]))
  return label, vector


def _vocabulary(names: list[str]) -> str:
  """The names a prompt may use, as an error message lists them."""
  return ", ".join(repr(name) for name in names)
