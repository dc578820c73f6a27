"""Prompts: the words a user samples a conditional model with, mapped to its conditioning.

A class-conditional model's vocabulary is its dataset's own class names (TFDS ClassLabel
names, a folder dataset's label folders, a prepared dataset's manifest), recorded in the
workdir when training starts (`labels.json`), so a run samples by name on a machine without
its data. Matching ignores case and punctuation, and a name with alternatives
("T-shirt/top") answers to each of them ("t-shirt", "top") as well as to the whole.
"""

import json
import os
import re

from jaxgen import conditioning, files
from jaxgen.errors import UserError

LABELS_FILE = "labels.json"


def labels_path(workdir: str) -> str:
  return os.path.join(workdir, LABELS_FILE)


def write_label_names(workdir: str, names: list[str]) -> None:
  """Records the run's class names (atomically: a crash never leaves half a file)."""
  with files.atomic_write(labels_path(workdir)) as tmp, open(tmp, "w") as f:
    json.dump({"label_names": list(names)}, f)


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
    raise UserError(f"--prompt {prompt!r} {why}; the vocabulary: "
                    + ", ".join(repr(name) for name in names))
  return found[0]
