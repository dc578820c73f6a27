"""Prompts: class names to labels, and the one-line errors for words a model does not know."""

import ml_collections
import pytest

from jaxgen import prompts
from jaxgen.errors import UserError

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]


def _config(num_classes):
  return ml_collections.ConfigDict(dict(family="diffusion",
                                        model=dict(num_classes=num_classes)))


@pytest.mark.parametrize("prompt,label", [
    ("ankle boot", 9), ("Ankle-Boot", 9), ("  ANKLE   boot ", 9), ("T-shirt/top", 0),
    ("t-shirt", 0), ("top", 0), ("Shirt", 6), ("bag", 8)])
def test_a_class_name_in_any_case_or_punctuation_gives_its_label(prompt, label):
  assert prompts.label_of(prompt, FASHION, _config(10)) == label


@pytest.mark.parametrize("prompt,names,classes,fragments", [
    ("boots", FASHION, 10, ["'boots' is not a class name", "'T-shirt/top'", "'Ankle boot'"]),
    ("", FASHION, 10, ["is not a class name"]),
    ("cat", ["cat/dog", "dog/cat"], 2, ["matches several classes"]),
    ("dress", FASHION, 0, ["unconditional"]),
    ("dress", [], 10, ["names 0 classes but the model has 10", "--label 0..9"]),
])
def test_a_word_outside_the_vocabulary_is_a_one_line_error(prompt, names, classes, fragments):
  with pytest.raises(UserError) as error:
    prompts.label_of(prompt, names, _config(classes))
  assert "\n" not in str(error.value)
  for fragment in fragments:
    assert fragment in str(error.value)


def test_label_names_round_trip_through_the_workdir(tmp_path):
  prompts.write_label_names(str(tmp_path), FASHION)
  assert prompts.read_label_names(str(tmp_path), _config(10)) == FASHION
