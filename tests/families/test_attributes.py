"""Multi-attribute conditioning: a table of per-image attributes (generated here for the
bundled data), a U-Net conditioned on the multi-hot vector with classifier-free guidance,
and `jaxgen sample --prompt "A,B"` choosing attributes by name."""

import json
import os
import types
from unittest import mock

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxgen import conditioning, config as config_lib, inference, prompts, train
from jaxgen import main as jaxgen_main
from jaxgen.data import attributes, datasets
from jaxgen.errors import UserError
from jaxgen.families import diffusion
from tests.helpers import read_metrics, small_config

EDM = "experiments/edm_fashion_mnist.py"
NAMES = ["Bright", "Footwear"]
# One resolution, no attention, at 8×8 (the diffusion family's loop-test size).
TINY = {"model.multipliers": "(1,)", "model.attention": "()", "model.image_size": "8",
        "data.image_size": "8", "model.num_attributes": "2"}


@pytest.fixture(scope="module")
def table(data_dir, tmp_path_factory):
  """A CSV of two attributes of every bundled image, read off the data itself: 'Bright'
  (mean level above the split's median) and 'Footwear' (sandal, sneaker, ankle boot)."""
  path = str(tmp_path_factory.mktemp("attributes") / "attributes.csv")
  data = config_lib.base_config().data
  data.update(dict(name="fashion_mnist_small", data_dir=str(data_dir)))
  rows = []
  for split in ("train", "test"):
    source = datasets.load_split(data, split)
    brightness = source.images.mean(axis=(1, 2, 3))
    bright = brightness > np.median(brightness)
    footwear = np.isin(source.labels, (5, 7, 9))
    rows += [f"{split}[{i}],{int(b)},{int(f)}" for i, (b, f) in enumerate(zip(bright, footwear))]
  with open(path, "w") as f:
    f.write("image," + ",".join(NAMES) + "\n" + "\n".join(rows) + "\n")
  return path


def _config(data_dir, table, **overrides):
  return small_config(EDM, data_dir, **{"data.attributes": table, **TINY, **overrides})


def test_the_table_gives_each_record_its_multi_hot_row(tmp_path):
  path = tmp_path / "a.csv"
  path.write_text("image,Smiling,Eyeglasses\nx[0],1,-1\nx[1], 0 ,1\n\n")
  names, rows = attributes.read(str(path))
  assert names == ["Smiling", "Eyeglasses"]
  np.testing.assert_array_equal(attributes.for_records(str(path), ["x[1]", "x[0]"]),
                                [[0, 1], [1, 0]])
  with pytest.raises(UserError, match=r"has no row for 'x\[2\]' \(1 images lack one\)"):
    attributes.for_records(str(path), ["x[0]", "x[2]"])
  path.write_text("image,Smiling\nx[0],2\n")
  with pytest.raises(UserError, match=r"line 2 \('x\[0\]'\): expected 1 values, each 0/1"):
    attributes.read(str(path))


def test_an_embedding_file_plugs_into_the_same_key(tmp_path):
  path = str(tmp_path / "e.npz")
  np.savez(path, records=np.array(["a", "b"]), vectors=np.array([[0.5, -2.0, 1.0], [0, 0, 3]]))
  assert attributes.names(path) == []
  np.testing.assert_allclose(attributes.for_records(path, ["b", "a"]),
                             [[0, 0, 3], [0.5, -2.0, 1.0]])
  np.savez(path, records=np.array(["a"]), vectors=np.array([[np.nan]]))
  with pytest.raises(UserError, match=r"expected finite 'vectors' \[n, D\]"):
    attributes.read(path)


def _prompt_config(num_classes, num_attributes):
  return ml_collections.ConfigDict(dict(
      family="diffusion", data=dict(attributes=""),
      model=dict(num_classes=num_classes, num_attributes=num_attributes)))


def test_a_prompt_names_attributes_and_at_most_one_class(tmp_path):
  workdir = str(tmp_path)
  prompts.write_label_names(workdir, ["Top", "Ankle boot"], ["Smiling", "Eye-glasses"])
  config = _prompt_config(0, 2)
  label, vector = prompts.condition_of("smiling, EYE GLASSES", workdir, config)
  assert label is None
  np.testing.assert_array_equal(vector, [1, 1])
  np.testing.assert_array_equal(prompts.condition_of("eye glasses", workdir, config)[1], [0, 1])
  label, vector = prompts.condition_of("ankle boot,Smiling", workdir, _prompt_config(2, 2))
  assert label == 1
  np.testing.assert_array_equal(vector, [1, 0])
  for prompt, config, fragment in (
      ("Smiling,Hat", _prompt_config(0, 2), "'Hat' is not an attribute name; the vocabulary: "
                                            "'Smiling', 'Eye-glasses'"),
      ("Top,Ankle boot", _prompt_config(2, 2), "'Ankle boot' is a second class name"),
      (" , ", _prompt_config(0, 2), "names nothing"),
      ("Smiling", _prompt_config(0, 3), "names 2 attributes but the model has 3")):
    with pytest.raises(UserError, match=fragment) as error:
      prompts.condition_of(prompt, workdir, config)
    assert "\n" not in str(error.value)


def test_unprompted_samples_show_one_attribute_each_or_none_for_embeddings():
  named = _prompt_config(0, 3)
  np.testing.assert_array_equal(conditioning.cycling_attributes(named, 4),
                                [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
  embedded = _prompt_config(0, 3)
  embedded.data.attributes = "text_embeddings.npz"
  assert np.isnan(conditioning.cycling_attributes(embedded, 4)).all()
  assert conditioning.named_attributes(embedded) == 0 and conditioning.named_attributes(named) == 3


def test_dropping_makes_labels_and_attributes_null_together():
  config = _prompt_config(10, 3)
  labels, vectors = jnp.zeros((4000,), jnp.int32), jnp.ones((4000, 3))
  dropped_labels, dropped = conditioning.drop(config, labels, vectors, jax.random.PRNGKey(0),
                                              0.25)
  null_rows = np.isnan(np.asarray(dropped)).all(axis=1)
  np.testing.assert_array_equal(null_rows, np.asarray(dropped_labels) == 10)
  assert np.isnan(np.asarray(dropped))[~null_rows].sum() == 0
  assert abs(null_rows.mean() - 0.25) < 0.03


@pytest.fixture(scope="module")
def run(data_dir, table, tmp_path_factory):
  """Two steps of the EDM U-Net conditioned on the two attributes, through the loop."""
  workdir = str(tmp_path_factory.mktemp("attributes_run"))
  train.train_and_evaluate(_config(data_dir, table, total_steps=2, eval_every=2,
                                   sample_every=2), workdir)
  return workdir


def test_a_run_trains_on_the_attributes_and_records_their_names(run):
  metrics = read_metrics(run)
  assert [m["step"] for m in metrics if "train/loss" in m] == [1, 2]
  assert all(np.isfinite(m["train/loss"]) for m in metrics if "train/loss" in m)
  with open(prompts.labels_path(run)) as f:
    assert json.load(f)["attribute_names"] == NAMES
  grid = np.asarray(Image.open(os.path.join(run, "samples", "step_00000002.png")))
  assert grid.shape[0] == 8 + 2 * 2  # The :small variant's 4 samples, in the classes' columns.


def test_guidance_zero_is_unconditional_and_the_attributes_matter(run):
  config, _, mesh, state = inference.restore(run)
  params = jax.tree.map(lambda p: p + 0.05, state.params)  # Conditions visibly differ.
  x = jax.random.normal(jax.random.PRNGKey(5), (3, 8, 8, 1))
  vectors = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  labels = jnp.array([0, 3, 7])
  sigma = jnp.full((3,), 1.5)
  with jax.set_mesh(mesh):
    at = lambda w: diffusion.guided_denoiser(config, params, labels, w,
                                             attributes=vectors)(x, 1.5)
    denoise = lambda y, v: diffusion.denoise(config, params, x, sigma, y, attributes=v)
    null_labels, null_vectors = conditioning.null(config, labels, vectors)
    uncond, cond = denoise(null_labels, null_vectors), denoise(labels, vectors)
    np.testing.assert_allclose(at(0.0), uncond, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(at(1.0), cond, rtol=1e-4, atol=1e-5)
    assert not np.allclose(denoise(labels, vectors[::-1]), cond, atol=1e-4)
    # No attributes at all is the null condition.
    np.testing.assert_array_equal(denoise(null_labels, None), uncond)


def test_sample_by_prompt_and_its_errors(run, tmp_path, monkeypatch):
  """--prompt reaches the sampler as the named attributes' multi-hot vector (and the labels
  cycle); the samples follow that vector (on perturbed weights: two steps from the
  zero-initialised output layer barely move it)."""
  sample, seen = inference.sample_uint8, []
  monkeypatch.setattr(inference, "sample_uint8", lambda *args: seen.append(args) or sample(*args))
  out = str(tmp_path / "s.npz")
  for prompt in ("bright,footwear", "Footwear"):
    jaxgen_main.run(["sample", "--workdir", run, "--num", "2", "--out", out,
                     "--prompt", prompt, "--seed", "1"])
    assert np.load(out)["images"].shape == (2, 8, 8, 1)
  assert [(args[6], list(args[7])) for args in seen] == [(None, [1, 1]), (None, [0, 1])]
  with pytest.raises(UserError, match="'hat' is not an attribute or class name"):
    jaxgen_main.run(["sample", "--workdir", run, "--num", "2", "--out", out,
                     "--prompt", "bright,hat"])
  config, family, mesh, state = inference.restore(run)
  config.sampling.weights = "raw"
  state = state.replace(params=jax.tree.map(lambda p: p + 0.05, state.params))
  draw = lambda vector: sample(config, family, mesh, state, 2, 1, 3, np.array(vector))
  assert not np.array_equal(draw([1.0, 1.0]), draw([0.0, 1.0]))


def test_sample_takes_vectors_from_a_file_and_refuses_ones_that_do_not_fit(run, tmp_path,
                                                                          monkeypatch):
  """--condition FILE.npy: one vector [A] for every sample, or rows [N, A] in turn."""
  sample, seen = inference.sample_uint8, []
  monkeypatch.setattr(inference, "sample_uint8", lambda *args: seen.append(args) or sample(*args))
  out = str(tmp_path / "s.npz")
  rows = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]], np.float32)
  np.save(tmp_path / "rows.npy", rows)
  jaxgen_main.run(["sample", "--workdir", run, "--num", "4", "--out", out, "--condition",
                   str(tmp_path / "rows.npy")])
  assert np.load(out)["images"].shape == (4, 8, 8, 1)
  np.testing.assert_array_equal(seen[0][7], rows)
  config = inference.restore(run)[0]
  cond = conditioning.for_sampling(config, 4, None, rows)["attributes"]
  np.testing.assert_array_equal(cond, rows[[0, 1, 2, 0]])  # Sample i gets row i mod N.
  np.save(tmp_path / "wide.npy", np.zeros((2, 3), np.float32))
  np.save(tmp_path / "text.npy", np.array(["a", "b"]))
  np.save(tmp_path / "half.npy", np.array([[1.0, np.nan]], np.float32))
  for path, fragment in ((tmp_path / "wide.npy", r"\[N, 2\] .* found float32 \[2, 3\]"),
                         (tmp_path / "text.npy", "found <U1"),
                         (tmp_path / "half.npy", "row 0 has infinite or some"),
                         (tmp_path / "rows.txt", "expected a FILE.npy"),
                         (tmp_path / "missing.npy", "cannot read it")):
    with pytest.raises(UserError, match=fragment):
      jaxgen_main.run(["sample", "--workdir", run, "--num", "2", "--out", out, "--condition",
                       str(path)])
  for flags, fragment in ((["--prompt", "bright"], "--condition and --prompt"),
                          (["--traverse"], "applies to plain sampling")):
    with pytest.raises(UserError, match=fragment):
      jaxgen_main.run(["sample", "--workdir", run, "--num", "2", "--out", out, "--condition",
                       str(tmp_path / "rows.npy"), *flags])
  with pytest.raises(UserError, match="takes no attribute vectors"):
    conditioning.read_vectors(str(tmp_path / "rows.npy"), _prompt_config(10, 0))


def test_attributes_without_a_table_or_of_another_width_are_refused(data_dir, table, tmp_path):
  with pytest.raises(UserError, match="model.num_attributes=2 but data.attributes='' gives 0 "
                                     "per image: set model.num_attributes=0 or pass"):
    train.train_and_evaluate(small_config(EDM, data_dir, **TINY, total_steps=1),
                             str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
  with pytest.raises(UserError, match="model.num_attributes=3 but data.attributes=.* gives 2 "
                                     "per image: set model.num_attributes=2"):
    train.train_and_evaluate(_config(data_dir, table, total_steps=1,
                                     **{"model.num_attributes": 3}), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_celeba_attributes_come_from_the_dataset_itself():
  """data.attributes='tfds' reads CelebA's 40 boolean attributes in name order, per record
  (TFDS's mock CelebA: random images and attributes, no download)."""
  import tensorflow_datasets as tfds
  data = config_lib.load("experiments/edm_celeba.py:small", {}).data
  with data.unlocked():
    data.image_size = 8
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    names = attributes.attribute_names(data)
    rows = attributes.for_split(data, "train", ["train[5]", "train[0]"])
    with pytest.raises(UserError, match=r"has no row for 'train\[6\]'"):
      attributes.for_split(data, "train", ["train[6]"])
  assert len(names) == 40 and names == sorted(names) and "Smiling" in names
  assert rows.shape == (2, 40) and set(np.unique(rows)) <= {0.0, 1.0}


def test_the_celeba_experiment_takes_a_step_on_attribute_vectors():
  config = config_lib.load("experiments/edm_celeba.py:small", {})
  shape = diffusion.image_shape(config)
  batch = {"image": jnp.zeros((4, *shape)), "label": jnp.zeros((4,), jnp.int32),
           "attributes": jnp.ones((4, 40))}

  def step(batch):
    state = diffusion.init_state(config, jax.random.PRNGKey(0), shape)
    return diffusion.train_step(config, state, batch)[1]["train/loss"]
  assert jax.eval_shape(step, batch).shape == ()


def test_sample_metrics_draw_with_the_reference_examples_attributes():
  """FID of a model with attributes samples the data's mix of attributes: sample i takes
  the attributes (and class) of reference example i, cycling through the split."""
  from jaxgen.evaluators import sample_quality
  source = types.SimpleNamespace(attributes=np.eye(2, dtype=np.float32)[[0, 1, 1]],
                                 labels=np.array([4, 5, 6]))
  evaluator = types.SimpleNamespace(config=_prompt_config(10, 2), source=source)
  evaluator._conditioned = types.MethodType(
      sample_quality.SampleQualityEvaluator._conditioned, evaluator)
  cond = sample_quality.SampleQualityEvaluator._conditions(evaluator, 1, 2)  # Examples 2, 3.
  np.testing.assert_array_equal(cond["attributes"], [[0, 1], [1, 0]])
  np.testing.assert_array_equal(cond["label"], [6, 4])
  # On each of two processes, half of chunk 1 from its own shard: its examples 1 (of 0, 1).
  with mock.patch.object(jax, "process_count", return_value=2):
    cond = sample_quality.SampleQualityEvaluator._conditions(evaluator, 1, 2)
  np.testing.assert_array_equal(cond["attributes"], [[0, 1]])
  np.testing.assert_array_equal(cond["label"], [5])
  evaluator.config = _prompt_config(10, 0)
  assert sample_quality.SampleQualityEvaluator._conditions(evaluator, 0, 2) is None
