"""The FID Inception network: shapes, pytorch-fid's resize and weight layout, checked storage."""

import functools
import math
import sys

import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.errors import UserError
from jaxgen.evaluators import feature_store, features, inception

SIZE = 107  # The smallest at which Mixed_7b/7c see 2×2, so their pools act; cheaper than 299.
# sum(p.numel() for p in model.parameters()) of pytorch-fid's FIDInceptionV3, less its
# 1008-class fc (23,850,960 - 2,065,392), counted once with torch on a transcription of
# pytorch-fid's inception.py; it is also torchvision's inception_v3 (27,161,264) less
# AuxLogits (3,326,696) and its 1000-class fc (2,049,000).
PARAM_COUNT = 21_785_568


@pytest.fixture(scope="module")
def variables():
  """Random variables; BatchNorm's far from their init, so a swapped mean/var or scale/bias
  shows in the features."""
  rng = np.random.default_rng(0)

  def leaf(path, shape):
    if path[-1] == "kernel":  # He-scaled, so activations keep their size through 40 layers.
      return rng.standard_normal(shape, np.float32) * math.sqrt(2 / math.prod(shape[:-1]))
    if path[-1] in ("scale", "var"):
      return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return 0.1 * rng.standard_normal(shape, np.float32)

  flat = flax.traverse_util.flatten_dict(inception.abstract_variables())
  return flax.traverse_util.unflatten_dict({p: leaf(p, a.shape) for p, a in flat.items()})


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(1).uniform(-1, 1, [2, 40, 40, 3]).astype(np.float32)


@pytest.fixture(scope="module")
def weights_file(variables, tmp_path_factory):
  """(state_dict, .npz path): `variables` under pytorch-fid's names, plus the classifier and
  batch counter that the real file also holds."""
  state_dict = inception.variables_to_state_dict(variables)
  state_dict.update({"fc.weight": np.zeros([1008, 2048], np.float32),
                     "fc.bias": np.zeros([1008], np.float32),
                     "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(0)})
  path = str(tmp_path_factory.mktemp("weights") / "pt_inception.npz")
  np.savez(path, **state_dict)
  return state_dict, path


@pytest.mark.parametrize("image_size", [inception.IMAGE_SIZE, inception.MIN_IMAGE_SIZE])
def test_features_are_2048_wide(image_size):
  images = jax.ShapeDtypeStruct((2, 128, 96, 3), jnp.float32)
  out = jax.eval_shape(functools.partial(inception.embed, image_size=image_size),
                       inception.abstract_variables(), images)
  assert out.shape == (2, inception.FEATURE_DIM)


def test_the_parameter_count_is_pytorch_fids():
  params = inception.abstract_variables()["params"]
  assert sum(math.prod(p.shape) for p in jax.tree.leaves(params)) == PARAM_COUNT


def test_resizing_is_pytorch_bilinear_without_antialiasing():
  # Expected values from F.interpolate(x, size, mode="bilinear", align_corners=False).
  up = inception.resize(jnp.array([[0.0, 1.0], [2.0, 3.0]])[None, :, :, None], 4)
  ramp = np.array([0.0, 0.25, 0.75, 1.0])
  np.testing.assert_allclose(up[0, :, :, 0], 2 * ramp[:, None] + ramp[None, :], atol=1e-6)
  down = inception.resize(jnp.arange(16.0).reshape(1, 4, 4, 1), 2)
  np.testing.assert_allclose(down[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]], atol=1e-6)
  assert up.shape == (1, 4, 4, 3)


def test_features_are_deterministic_and_per_image(variables, images):
  first = np.asarray(inception.embed(variables, images, SIZE))
  np.testing.assert_array_equal(inception.embed(variables, images, SIZE), first)
  others = images.copy()
  others[1] = -images[1]
  np.testing.assert_array_equal(inception.embed(variables, others, SIZE)[0], first[0])
  assert np.all(np.isfinite(first)) and not np.allclose(first[0], first[1])


def test_features_match_pytorch_fids_network(variables, images):
  # Golden values from torch, computed once: pytorch-fid's FIDInceptionV3 (transcribed from
  # its inception.py and torchvision's Inception3) with these variables as its state_dict, on
  # these images resized by F.interpolate. Per image, the mean feature of each of Mixed_7c's
  # branches: 1×1, 3×3, double 3×3, max pool. They rely on numpy's PCG64 streams (stable).
  expected = [[1.26946438, 1.22642999, 1.07398003, 2.13884789],
              [1.2106602, 1.16590198, 1.02338526, 2.0623837]]
  out = np.asarray(inception.embed(variables, images, SIZE))
  means = [out[:, start:stop].mean(axis=1)
           for start, stop in ((0, 320), (320, 1088), (1088, 1856), (1856, 2048))]
  np.testing.assert_allclose(np.stack(means, axis=1), expected, rtol=1e-4)


def test_grey_images_are_read_as_rgb(images):
  # On the network's input, not its features: equal inputs give equal features (above), and
  # a second compilation of the network for one channel would double this file's time.
  grey = images[..., :1]
  np.testing.assert_array_equal(inception.resize(grey, SIZE),
                                inception.resize(np.repeat(grey, 3, axis=-1), SIZE))


@pytest.mark.parametrize("shape, image_size, match", [
    ((2, 40, 40, 2), SIZE, "1 or 3"),
    ((2, 40, 40, 3), inception.MIN_IMAGE_SIZE - 1, "at least 75")])
def test_unusable_inputs_are_refused(variables, shape, image_size, match):
  with pytest.raises(UserError, match=match):
    inception.embed(variables, jnp.zeros(shape), image_size)


def test_exported_kernels_are_pytorch_oihw(variables):
  """A 7×1 conv with 128 in, 192 out channels, against torch's conv2d + BatchNorm2d in NCHW."""
  name = "Mixed_6b.branch7x7_3"
  state_dict = inception.variables_to_state_dict(variables)
  gamma, beta, mean, var = (state_dict[f"{name}.bn.{leaf}"][:, None, None]
                            for leaf in ("weight", "bias", "running_mean", "running_var"))
  x = np.random.default_rng(2).standard_normal([1, 128, 9, 5], np.float32)
  conv = jax.lax.conv_general_dilated(
      x, state_dict[f"{name}.conv.weight"], (1, 1), ((3, 3), (0, 0)),
      dimension_numbers=("NCHW", "OIHW", "NCHW"), precision="highest")
  expected = np.maximum((conv - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0)
  layer = {c: variables[c]["Mixed_6b"]["branch7x7_3"] for c in ("params", "batch_stats")}
  actual = inception.BasicConv(192, (7, 1), padding=(3, 0)).apply(layer, x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.transpose(actual, (0, 3, 1, 2)), expected, rtol=1e-4, atol=1e-4)


def test_state_dict_conversion_round_trips(variables):
  back = inception.state_dict_to_variables(inception.variables_to_state_dict(variables))
  assert jax.tree.structure(back) == jax.tree.structure(variables)
  for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(got, want)


def test_imported_weights_load_with_identical_features(variables, images, weights_file,
                                                       tmp_path):
  info = inception.import_weights(weights_file[1], "inception_small", str(tmp_path),
                                  image_size=SIZE)
  features_fn, loaded_info = features.load("inception_small", str(tmp_path))
  assert loaded_info == info
  assert (info["architecture"], info["source"], info["image_size"]) == (
      inception.ARCHITECTURE, "pt_inception.npz", SIZE)
  np.testing.assert_array_equal(features_fn(images), inception.embed(variables, images, SIZE))


def test_a_tampered_params_file_is_refused(weights_file, tmp_path):
  info = inception.import_weights(weights_file[1], "inception_small", str(tmp_path),
                                  image_size=SIZE)
  path = tmp_path / "inception_small" / feature_store.PARAMS_FILE
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 1
  path.write_bytes(bytes(data))
  with pytest.raises(UserError, match="checksum") as raised:
    features.load("inception_small", str(tmp_path))
  assert info["params_sha256"] in str(raised.value) and "import-inception" in str(raised.value)


@pytest.mark.parametrize("change, match", [
    (lambda w: w.pop("Mixed_6e.branch_pool.bn.running_var"),
     r"lack 1 .*Mixed_6e\.branch_pool\.bn\.running_var"),
    (lambda w: w.update({"Conv2d_1a_3x3.conv.weight": np.zeros([3, 3, 3, 32])}),
     r"Conv2d_1a_3x3\.conv\.weight.*\(3, 3, 3, 32\), expected \(32, 3, 3, 3\)"),
    (lambda w: w.update({"Mixed_5b.branch_extra.conv.weight": np.zeros(1)}),
     r"unknown 1 .*Mixed_5b\.branch_extra\.conv\.weight"),
    (lambda w: w.update({"fc.weight": np.zeros([1000, 2048])}), "torchvision's ImageNet")])
def test_wrong_weights_are_refused_by_name(weights_file, tmp_path, change, match):
  state_dict = dict(weights_file[0])
  change(state_dict)
  np.savez(tmp_path / "weights.npz", **state_dict)
  with pytest.raises(UserError, match=match):
    inception.import_weights(str(tmp_path / "weights.npz"), "inception_small", str(tmp_path))
  assert not (tmp_path / "inception_small").exists()


@pytest.mark.parametrize("file_name, match", [
    ("absent.npz", "does not exist"), ("weights.h5", "'.h5'"),
    ("garbage.npz", "not a readable .npz")])
def test_unreadable_weights_files_are_refused(tmp_path, file_name, match):
  if file_name != "absent.npz":
    (tmp_path / file_name).write_bytes(b"garbage")
  with pytest.raises(UserError, match=match):
    inception.import_weights(str(tmp_path / file_name), root=str(tmp_path))


def test_a_pth_without_torch_says_how_to_convert_it(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # What `import torch` sees without torch.
  (tmp_path / "weights.pth").write_bytes(b"")
  with pytest.raises(UserError, match="needs torch.*numpy.savez"):
    inception.import_weights(str(tmp_path / "weights.pth"), root=str(tmp_path))


def test_a_pth_imports_as_its_npz(weights_file, tmp_path):
  torch = pytest.importorskip("torch")
  state_dict, npz_path = weights_file
  torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()},
             tmp_path / "weights.pth")
  from_pth = inception.import_weights(str(tmp_path / "weights.pth"), "a", str(tmp_path))
  from_npz = inception.import_weights(npz_path, "b", str(tmp_path))
  assert from_pth["params_sha256"] == from_npz["params_sha256"]
  (tmp_path / "garbage.pth").write_bytes(b"garbage")
  with pytest.raises(UserError, match="torch cannot read"):
    inception.import_weights(str(tmp_path / "garbage.pth"), root=str(tmp_path))
