"""Prepared data: `jaxgen prepare-data` -> ArrayRecord shards + manifest -> streamed training."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgen import config as config_lib, train
from jaxgen.data import datasets, input_pipeline, prepare, prepared
from jaxgen.errors import UserError
from tests.helpers import final_params, read_metrics

VAE = "experiments/vae_fashion_mnist.py:small"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """ROOT/<split>/<label>/*.png: 192 train and 40 test 28x28 greys in two classes, one
  broken PNG and one text file among them."""
  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  for split, n in (("train", 192), ("test", 40)):
    for i in range(n):
      label = ("shirt", "shoe")[i % 2]
      os.makedirs(root / split / label, exist_ok=True)
      pixels = rng.integers(0, 128, (28, 28)) + 127 * (i % 2)  # The classes differ.
      Image.fromarray(pixels.astype(np.uint8)).save(root / split / label / f"{i:03d}.png")
  (root / "train" / "shoe" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
  (root / "train" / "shoe" / "notes.txt").write_text("not an image")
  return root


@pytest.fixture(scope="module")
def prepared_dir(folder, tmp_path_factory):
  out = tmp_path_factory.mktemp("prepared") / "ds"
  prepare.prepare(str(out), folder=str(folder), channels=1, shard_size=40, workers=2)
  return out


def _config(prepared_dir, **overrides):
  values = {"data.name": "prepared", "data.prepared_dir": str(prepared_dir),
            "max_inflight_steps": "0", "checkpoint_every": "0", "sample_every": "0",
            "data.read_threads": "2"}
  values.update({k: str(v) for k, v in overrides.items()})
  return config_lib.load(VAE, values)


def test_the_manifest_counts_splits_and_classes_and_names_the_corrupt_file(folder,
                                                                           prepared_dir):
  manifest = prepared.read_manifest(str(prepared_dir))
  assert manifest["image_shape"] == [28, 28, 1] and manifest["label_names"] == ["shirt", "shoe"]
  train_split = manifest["splits"]["train"]
  assert train_split["num_examples"] == 192 and train_split["class_counts"] == {"0": 96,
                                                                                "1": 96}
  assert train_split["corrupt"] == [os.path.join("train", "shoe", "broken.png")]
  assert len(train_split["shards"]) == 5  # 193 images in shards of 40.
  assert manifest["splits"]["test"]["num_examples"] == 40
  records = prepared.open_split(str(prepared_dir), "train")
  image, label = records[0]  # The first file in sorted order, exactly (PNG is lossless).
  np.testing.assert_array_equal(image[..., 0], np.asarray(Image.open(
      folder / "train" / "shirt" / "000.png")))
  assert label == 0 and records.num_dropped == 1


def test_a_rerun_finishes_an_interrupted_preparation_and_keeps_finished_shards(folder,
                                                                               prepared_dir,
                                                                               tmp_path):
  out = tmp_path / "ds"
  shutil.copytree(prepared_dir, out)
  os.remove(out / prepared.MANIFEST)  # Killed before the manifest, and one shard unfinished:
  os.remove(out / "train-00001-of-00005.array_record.json")
  with pytest.raises(UserError, match="not a finished prepared dataset"):
    prepared.open_split(str(out), "train")
  kept = {f: os.path.getmtime(out / f) for f in ("train-00000-of-00005.array_record",
                                                 "train-00004-of-00005.array_record")}
  prepare.prepare(str(out), folder=str(folder), channels=1, shard_size=40, workers=2)
  assert {f: os.path.getmtime(out / f) for f in kept} == kept
  with open(out / prepared.MANIFEST) as f, open(prepared_dir / prepared.MANIFEST) as g:
    assert json.load(f) == json.load(g)
  with pytest.raises(UserError, match="holds another preparation"):
    prepare.prepare(str(out), folder=str(folder), channels=1, shard_size=16, workers=1)


def test_bad_inputs_are_one_line_errors(folder, prepared_dir, tmp_path):
  with pytest.raises(UserError, match="does not exist or is not a directory"):
    prepare.prepare(str(tmp_path / "out"), folder=str(tmp_path / "nothing"))
  os.makedirs(tmp_path / "empty" / "train" / "cat")
  with pytest.raises(UserError, match="split 'train' holds no .png/.jpg/.jpeg images"):
    prepare.prepare(str(tmp_path / "out"), folder=str(tmp_path / "empty"))
  with pytest.raises(UserError, match="is not writable"):
    prepare.prepare("/etc/hostname/out", folder=str(folder))
  old = tmp_path / "old"
  shutil.copytree(prepared_dir, old)
  manifest = json.loads((old / prepared.MANIFEST).read_text())
  (old / prepared.MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
  with pytest.raises(UserError, match="version 99, this jaxgen reads"):
    prepared.open_split(str(old), "train")
  (old / prepared.MANIFEST).write_text(json.dumps(manifest))
  os.remove(old / "test-00000-of-00001.array_record")
  with pytest.raises(UserError, match="test-00000-of-00001.array_record is missing"):
    prepared.open_split(str(old), "test")
  with pytest.raises(UserError, match="no split 'validation'"):
    prepared.open_split(str(old), "validation")


@pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (fake) devices")
def test_streamed_training_agrees_on_one_and_four_devices_and_resumes_bit_for_bit(
    prepared_dir, tmp_path):
  runs = {"one": (1, (3,)), "four": (4, (3,)), "resumed": (4, (2, 3))}
  for name, (devices, stops) in runs.items():
    for total in stops:
      train.train_and_evaluate(_config(prepared_dir, total_steps=total,
                                       **{"mesh.data": devices}), str(tmp_path / name))
  losses = {name: [r["train/loss"] for r in read_metrics(tmp_path / name)] for name in runs}
  assert len(losses["resumed"]) == 3 and losses["resumed"] == losses["four"]
  jax.tree.map(np.testing.assert_array_equal, final_params(str(tmp_path / "four")),
               final_params(str(tmp_path / "resumed")))
  np.testing.assert_allclose(losses["one"], losses["four"], rtol=2e-4)


class _Counting(prepared.PreparedSplit):
  """A split that records which indices it was asked for."""

  def __getitem__(self, index):
    self.reads.append(index)
    return super().__getitem__(index)


def test_each_process_reads_only_its_own_slice(prepared_dir):
  data = _config(prepared_dir).data
  manifest = prepared.read_manifest(str(prepared_dir))
  reads = []
  for process in range(2):
    split = _Counting(str(prepared_dir), "train", manifest)
    split.reads = []
    ds = input_pipeline.train_dataset(data, split, local_batch_size=8, seed=0, start_step=0,
                                      process_index=process, process_count=2)
    batches = list(ds.take(13).as_numpy_iterator())  # 104 > 96 records: a second epoch.
    assert all(b["image"].shape == (8, 28, 28, 1) for b in batches)
    assert split.reads and {i % 2 for i in split.reads} == {process}
    reads.append(set(split.reads))
  assert reads[0] | reads[1] == set(range(192))  # Together, every record of the split.


def test_streamed_batches_match_the_in_memory_path_in_distribution(prepared_dir):
  """The same images through both sources with flips, rotations and zooms: the same pixel
  statistics (mean, spread, fraction of fill, left-right asymmetry); the augmentation moves
  all but the spread well beyond the tolerance (checked against no augmentation)."""
  def stats(augment, source_of):
    data = _config(prepared_dir, **{"data.normalize": "unit", "data.augment.flip": augment,
                                    "data.augment.rotation": 30.0 * augment,
                                    "data.augment.zoom": 0.3 * augment}).data
    ds = input_pipeline.train_dataset(data, source_of(data), local_batch_size=16, seed=1,
                                      start_step=0)
    x = np.concatenate([b["image"] for b in ds.take(24).as_numpy_iterator()])
    return np.array([x.mean(), x.std(), (x == 0).mean(), np.abs(x - x[:, :, ::-1]).mean()])
  in_memory = stats(True, lambda data: datasets.load_split(data, "train"))
  streamed = stats(True, lambda data: prepared.open_split(str(prepared_dir), "train"))
  plain = stats(False, lambda data: prepared.open_split(str(prepared_dir), "train"))
  np.testing.assert_allclose(streamed, in_memory, rtol=0.05, atol=0.005)
  moved = np.abs(plain - in_memory)[[0, 2, 3]] > 0.1 * in_memory[[0, 2, 3]]  # Not the spread.
  assert moved.all(), (plain, in_memory)


def test_a_damaged_record_is_skipped_and_counted(prepared_dir, tmp_path):
  from array_record.python.array_record_module import ArrayRecordWriter
  out = tmp_path / "damaged"
  shutil.copytree(prepared_dir, out)
  good = prepared.open_split(str(prepared_dir), "test")
  writer = ArrayRecordWriter(str(out / "test-00000-of-00001.array_record"), "group_size:1")
  for i in range(len(good)):  # Record 5's PNG cut short, as a bad disk would leave it.
    record = prepared.encode(good[i][0], int(good[i][1]), "png")
    writer.write(record[:30] if i == 5 else record)
  writer.close()
  damaged = prepared.open_split(str(out), "test")
  np.testing.assert_array_equal(damaged[5][0], good[6][0])  # The next record stands in.
  np.testing.assert_array_equal(damaged[4][0], good[4][0])
  assert damaged.num_damaged == 1 and damaged.num_dropped == 1


def test_the_command_prints_the_counts_and_fails_in_one_line(folder, tmp_path, capsys):
  from jaxgen import main as jaxgen_main
  args = ["prepare-data", "--folder", str(folder), "--out", str(tmp_path / "ds"),
          "--channels", "1", "--image-size", "14", "--encoding", "raw", "--workers", "1"]
  assert jaxgen_main.run(args) == 0
  counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert counts["train"]["num_examples"] == 192 and counts["test"]["num_examples"] == 40
  assert prepared.open_split(str(tmp_path / "ds"), "test")[0][0].shape == (14, 14, 1)
  with pytest.raises(SystemExit) as exit_info:
    jaxgen_main.main(["prepare-data", "--out", str(tmp_path / "x")])
  assert exit_info.value.code == 2
  assert "one of the arguments --folder --tfds is required" in capsys.readouterr().err


def test_an_exclusion_list_leaves_its_records_out_of_the_preparation(folder, tmp_path):
  """`prepare-data --exclude` (the list `jaxgen audit-data` writes): the named files are not
  prepared, and the manifest says which list removed how many."""
  listed = tmp_path / "exclude.txt"
  listed.write_text("# audit-data's list\ntrain/shirt/000.png\ntrain/shoe/001.png\n"
                    "test/shirt/000.png\n")
  out = tmp_path / "ds"
  manifest = prepare.prepare(str(out), folder=str(folder), channels=1, shard_size=200,
                             workers=1, exclude=str(listed))
  assert manifest["splits"]["train"]["num_examples"] == 190
  assert manifest["splits"]["train"]["class_counts"] == {"0": 95, "1": 95}
  assert manifest["splits"]["test"]["num_examples"] == 39
  assert manifest["exclude"] == {"file": str(listed), "count": 3}
