"""`jaxgen audit-data` on a generated folder with every planted fault, and data.exclude."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxgen import config as config_lib
from jaxgen.data import audit, datasets


def _shape(kind, rng, size=16):
  """A white disc or a horizontal bar on black, jittered: two classes easy to tell apart."""
  y, x = np.mgrid[:size, :size]
  cy, cx = size / 2 + rng.uniform(-1, 1, 2)
  if kind == "disc":
    image = (y - cy) ** 2 + (x - cx) ** 2 < (size / 3) ** 2
  else:
    image = np.abs(y - cy) < size / 8
  noise = rng.integers(0, 30, (size, size))
  return np.clip(image * 220 + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
  """ROOT/{train,test}/{bar,disc}/ with: a corrupt file, a text file named .png, a test
  image copied into train, a train image copied within train, an RGBA and a 16-bit PNG,
  and two bars in the disc folder."""
  root = tmp_path_factory.mktemp("audited")
  rng = np.random.default_rng(0)
  for split, count in (("train", 20), ("test", 8)):
    for kind in ("bar", "disc"):
      os.makedirs(root / split / kind)
      for i in range(count):
        Image.fromarray(_shape(kind, rng)).save(root / split / kind / f"{i}.png")
  (root / "train" / "disc" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
  (root / "train" / "bar" / "notes.png").write_text("not an image")
  shutil.copy(root / "test" / "bar" / "3.png", root / "train" / "bar" / "leak.png")
  shutil.copy(root / "train" / "disc" / "5.png", root / "train" / "disc" / "copy.png")
  rgba = np.dstack([np.repeat(_shape("disc", rng)[..., None], 3, -1),
                    np.full((16, 16), 255, np.uint8)])
  Image.fromarray(rgba, "RGBA").save(root / "train" / "disc" / "rgba.png")
  Image.fromarray(_shape("bar", rng).astype(np.uint16) * 257).save(
      root / "train" / "bar" / "deep.png")
  for i in range(2):
    Image.fromarray(_shape("bar", rng)).save(root / "train" / "disc" / f"stray{i}.png")
  return str(root)


def test_the_audit_finds_each_planted_fault(planted, tmp_path):
  out = str(tmp_path / "audit.json")
  report = audit.main_audit(planted, None, out, None, near_bits=4, exclude_irrelevant=False)
  assert json.load(open(out))["num_images"] == report["num_images"] == {"test": 16,
                                                                          "train": 46}
  assert sorted(c["name"] for c in report["corrupt"]["train"]) == [
      "train/bar/notes.png", "train/disc/broken.png"]
  groups = {tuple(sorted(g["names"])): g["across_splits"] for g in report["exact_duplicates"]}
  assert groups == {("test/bar/3.png", "train/bar/leak.png"): True,
                    ("train/disc/5.png", "train/disc/copy.png"): False}
  odd = {o["name"]: o["pipeline"] for o in report["odd_formats"]["images"]}
  assert odd == {"train/disc/rgba.png": "alpha dropped", "train/bar/deep.png":
                 "16-bit scaled to 8"}
  assert report["classes"]["train"]["counts"] == {"bar": 22, "disc": 24}
  strays = [c["name"] for c in report["irrelevant_candidates"]]
  assert set(strays[:2]) == {"train/disc/stray0.png", "train/disc/stray1.png"}, strays
  assert "corrupt: 2" in audit.summary(report)
  excluded = open(report["exclusion_list"]["file"]).read().split()
  assert excluded == ["train/bar/leak.png", "train/bar/notes.png", "train/disc/broken.png",
                      "train/disc/copy.png"]


def test_near_duplicates_are_close_hashes_that_are_not_exact_copies(tmp_path):
  rng = np.random.default_rng(1)
  base = _shape("disc", rng, 32)
  shifted = base.copy()
  shifted[0, 0] = 255 - shifted[0, 0]  # One pixel changed: the same picture.
  items = [("a", base[..., None], 0), ("b", shifted[..., None], 0),
           ("c", _shape("bar", rng, 32)[..., None], 0)]
  report = audit.audit({"train": items}, ["x"], near_bits=4)
  assert [p["names"] for p in report["near_duplicates"]["pairs"]] == [["a", "b"]]


def test_the_exclusion_list_leaves_its_images_out_of_training(planted, tmp_path):
  report = audit.main_audit(planted, None, str(tmp_path / "a.json"), None, 4, False)
  data = config_lib.base_config().data
  data.update(dict(name="folder", folder=planted, image_size=16, channels=1))
  full = datasets.load_split(data, "train")
  data.exclude = report["exclusion_list"]["file"]
  kept = datasets.load_split(data, "train")
  # The two corrupt files were dropped either way; the two duplicates only by the list.
  assert full.num_dropped == kept.num_dropped == 2
  assert len(full.images) == 46 and len(kept.images) == 44
