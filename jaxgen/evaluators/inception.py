"""The FID Inception network, for FID/KID/precision-recall on RGB datasets.

FID is only comparable across papers when computed with one network: the 2015-12-05 TF
Inception that TTUR's FID used, as ported by pytorch-fid to
`pt_inception-2015-12-05-6726825d.pth`. `InceptionV3` rebuilds that network (torchvision's
Inception3 with pytorch-fid's FIDInceptionA/C/E_1/E_2 blocks, without the classifier) with
PyTorch's module names, so the weights map over one to one. Nothing is downloaded: the user
supplies the weights file, and `import_weights` stores it as a feature network that
`features.load` reads.
"""

import functools
import hashlib
import os
import pickle
import zipfile

import flax.linen as nn
import flax.serialization
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import UserError
from jaxgen.evaluators import feature_store

ARCHITECTURE = "inception_v3_fid"  # Bump on any change that alters the params or features.
FEATURE_DIM = 2048
IMAGE_SIZE = 299
MIN_IMAGE_SIZE = 75  # Smaller inputs shrink to nothing before Mixed_7a's stride-2 convs.
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
IMPORT_COMMAND = "jaxgen import-inception --weights FILE"
# FID must not depend on the machine: default precision lets GPUs convolve in TF32.
PRECISION = jax.lax.Precision.HIGHEST
_CLASSIFIER = "fc."  # In pytorch-fid's file, not part of the feature network.
# PyTorch's conv kernels are [out, in, height, width], Flax's [height, width, in, out].
_TO_FLAX_KERNEL, _TO_TORCH_KERNEL = (2, 3, 1, 0), (3, 2, 0, 1)
_TORCH_LEAF_NAMES = {("params", "kernel"): "weight", ("params", "scale"): "weight",
                     ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
                     ("batch_stats", "var"): "running_var"}


class BasicConv(nn.Module):
  """Conv without bias → BatchNorm on running statistics (eps 0.001) → ReLU."""
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, self.kernel_size, (self.strides, self.strides),
                padding=[(p, p) for p in self.padding], use_bias=False, precision=PRECISION,
                name="conv")(x)
    return nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x))


def _avg_pool(x: jax.Array) -> jax.Array:
  # TF's average pool, which the weights were trained with, leaves the zero padding out of
  # the mean: pytorch-fid's count_include_pad=False patch.
  return nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool(x: jax.Array, strides: int = 2) -> jax.Array:
  padding = ((1, 1), (1, 1)) if strides == 1 else "VALID"
  return nn.max_pool(x, (3, 3), strides=(strides, strides), padding=padding)


class InceptionA(nn.Module):
  """Mixed_5b..5d, with pytorch-fid's average pool."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch5x5 = BasicConv(48, name="branch5x5_1")(x)
    branch5x5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
    branch3x3dbl = BasicConv(64, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = BasicConv(self.pool_features, name="branch_pool")(_avg_pool(x))
    return jnp.concatenate([BasicConv(64, name="branch1x1")(x), branch5x5, branch3x3dbl,
                            branch_pool], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: 35×35 → 17×17."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = BasicConv(384, (3, 3), strides=2, name="branch3x3")(x)
    branch3x3dbl = BasicConv(64, name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv(96, (3, 3), strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e: factorised 7×7 convolutions, with pytorch-fid's average pool."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    branch7x7 = BasicConv(c7, name="branch7x7_1")(x)
    branch7x7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    dbl = BasicConv(c7, name="branch7x7dbl_1")(x)
    dbl = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(dbl)
    dbl = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(dbl)
    dbl = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(dbl)
    dbl = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(dbl)
    branch_pool = BasicConv(192, name="branch_pool")(_avg_pool(x))
    return jnp.concatenate([BasicConv(192, name="branch1x1")(x), branch7x7, dbl, branch_pool],
                           axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: 17×17 → 8×8."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = BasicConv(192, name="branch3x3_1")(x)
    branch3x3 = BasicConv(320, (3, 3), strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv(192, name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv(192, (3, 3), strides=2, name="branch7x7x3_4")(branch7x7x3)
    return jnp.concatenate([branch3x3, branch7x7x3, _max_pool(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1, average pool) and Mixed_7c (FIDInceptionE_2, max pool)."""
  max_pool: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    branch3x3 = BasicConv(384, name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3)], axis=-1)
    dbl = BasicConv(448, name="branch3x3dbl_1")(x)
    dbl = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(dbl)
    dbl = jnp.concatenate([
        BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(dbl),
        BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(dbl)], axis=-1)
    # The max pool in Mixed_7c is a quirk of the TF graph the weights come from (the paper
    # says average); FID reproduces it.
    pooled = _max_pool(x, strides=1) if self.max_pool else _avg_pool(x)
    branch_pool = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([BasicConv(320, name="branch1x1")(x), branch3x3, dbl, branch_pool],
                           axis=-1)


class InceptionV3(nn.Module):
  """[batch, height, width, 3] in [-1, 1] → [batch, FEATURE_DIM], the final average pool."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = BasicConv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = BasicConv(80, name="Conv2d_3b_1x1")(_max_pool(x))
    x = _max_pool(BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x))
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
      x = InceptionA(pool_features, name=name)(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, channels_7x7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                               ("Mixed_6e", 192)):
      x = InceptionC(channels_7x7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(max_pool=False, name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))


def _check_image_size(image_size) -> None:
  if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
    raise UserError(f"image_size={image_size!r}: expected an integer of at least "
                    f"{MIN_IMAGE_SIZE}, the smallest input Inception takes; FID uses "
                    f"{IMAGE_SIZE}")


def resize(images: jax.Array, image_size: int = IMAGE_SIZE) -> jax.Array:
  """[batch, height, width, 1 or 3] → float32 [batch, image_size, image_size, 3].

  Bilinear with half-pixel centres, as pytorch-fid's `F.interpolate(mode='bilinear',
  align_corners=False)`. jax.image.resize antialiases by default, which widens the kernel
  when downsampling (e.g. 512 → 299); pytorch-fid does not, so neither does this.
  """
  channels = images.shape[-1]
  if images.ndim != 4 or channels not in (1, 3):
    raise UserError(f"images of shape {images.shape}: expected [batch, height, width, 1 or 3]"
                    "; convert other channel counts to grey or RGB first")
  shape = (images.shape[0], image_size, image_size, channels)
  images = jax.image.resize(images.astype(jnp.float32), shape, "bilinear", antialias=False)
  return jnp.repeat(images, 3 // channels, axis=-1)  # Grey as RGB, like PIL's convert("RGB").


@functools.partial(jax.jit, static_argnames="image_size")
def embed(variables: dict, images: jax.Array, image_size: int = IMAGE_SIZE) -> jax.Array:
  """Images [batch, height, width, 1 or 3] in [-1, 1] → features [batch, FEATURE_DIM].

  Args:
    variables: {"params": …, "batch_stats": …} of an `InceptionV3`.
    image_size: the side images are resized to; FID's is 299, smaller only for tests.
  """
  _check_image_size(image_size)
  return InceptionV3().apply(variables, resize(images, image_size))


def features_fn(variables: dict, image_size: int = IMAGE_SIZE):
  """`embed` with `variables` put on the device once, not copied from the host every call."""
  variables = jax.device_put(variables)
  return lambda images: embed(variables, images, image_size)


@functools.cache
def _abstract_variables() -> dict:
  """Shapes of the variables, flattened: {(collection, module, …, leaf): ShapeDtypeStruct}."""
  images = jax.ShapeDtypeStruct((1, MIN_IMAGE_SIZE, MIN_IMAGE_SIZE, 3), jnp.float32)
  variables = jax.eval_shape(InceptionV3().init, jax.random.key(0), images)
  return flax.traverse_util.flatten_dict(variables)


def abstract_variables() -> dict:
  """The variables' tree of jax.ShapeDtypeStruct: traced, not computed."""
  return flax.traverse_util.unflatten_dict(_abstract_variables())


def _torch_name(path: tuple[str, ...]) -> str:
  return ".".join(path[1:-1] + (_TORCH_LEAF_NAMES[path[0], path[-1]],))


def _torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape[i] for i in _TO_TORCH_KERNEL) if path[-1] == "kernel" else tuple(shape)


def state_dict_to_variables(state_dict: dict) -> dict:
  """pytorch-fid's state_dict {name: array} → {"params": …, "batch_stats": …} for `embed`.

  Convolution kernels are transposed to Flax's layout; the classifier and torch's batch
  counters are dropped.
  """
  _check_keys(state_dict)
  flat = {}
  for path, target in _abstract_variables().items():
    name = _torch_name(path)
    value = np.asarray(state_dict[name], np.float32)
    if value.shape != _torch_shape(path, target.shape):
      raise UserError(f"weight {name!r} has shape {value.shape}, expected "
                      f"{_torch_shape(path, target.shape)}: supply pytorch-fid's {WEIGHTS_FILE}")
    flat[path] = value.transpose(_TO_FLAX_KERNEL) if path[-1] == "kernel" else value
  return flax.traverse_util.unflatten_dict(flat)


def _check_keys(state_dict: dict) -> None:
  expected = {_torch_name(path) for path in _abstract_variables()}
  missing = sorted(expected - set(state_dict))
  unexpected = sorted(name for name in set(state_dict) - expected if not (
      name.startswith(_CLASSIFIER) or name.endswith(".num_batches_tracked")))
  for problem, names in (("lack", missing), ("have unknown", unexpected)):
    if names:
      raise UserError(f"the weights {problem} {len(names)} of the FID Inception's tensors "
                      f"({', '.join(names[:5])}{', …' if len(names) > 5 else ''}): expected "
                      f"the state_dict of pytorch-fid's {WEIGHTS_FILE}")
  if "fc.weight" in state_dict and np.shape(state_dict["fc.weight"])[0] == 1000:
    raise UserError("the weights have a 1000-class fc.weight: these are torchvision's ImageNet "
                    f"Inception, whose features differ from FID's; supply {WEIGHTS_FILE} "
                    "(1008 classes) from pytorch-fid's releases")


def variables_to_state_dict(variables: dict) -> dict:
  """The inverse of `state_dict_to_variables`: {pytorch-fid name: numpy array}."""
  state_dict = {}
  for path, value in flax.traverse_util.flatten_dict(variables).items():
    value = np.asarray(value)
    state_dict[_torch_name(path)] = (value.transpose(_TO_TORCH_KERNEL) if path[-1] == "kernel"
                                     else value)
  return state_dict


def _read_state_dict(path: str) -> dict:
  """{name: numpy array} from a PyTorch `.pth`/`.pt` state_dict or an `.npz` of one."""
  if not os.path.isfile(path):
    raise UserError(f"weights file {path!r} does not exist: pass the path of pytorch-fid's "
                    f"{WEIGHTS_FILE}")
  suffix = os.path.splitext(path)[1].lower()
  if suffix in (".pth", ".pt"):
    return _read_torch(path)
  if suffix == ".npz":
    try:
      with np.load(path) as f:
        return dict(f)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
      raise UserError(f"{path} is not a readable .npz ({_first_line(e)}): re-create it with "
                      "numpy.savez(FILE, **state_dict)") from e
  raise UserError(f"weights file {path!r} ends in {suffix!r}: expected a PyTorch state_dict "
                  "(.pth or .pt) or an .npz of one")


def _read_torch(path: str) -> dict:
  try:
    import torch  # Only here: a .pth needs it, and jaxgen does not depend on torch.
  except ImportError as e:
    raise UserError(f"{path} is a PyTorch file and reading it needs torch, which is not "
                    "installed: `pip install torch` (the CPU build is enough), or convert it "
                    "where torch is installed with `numpy.savez(OUT.npz, **{k: v.numpy() for "
                    "k, v in torch.load(FILE).items()})` and import the .npz") from e
  try:
    # weights_only: a plain state_dict needs no pickled code, so none may run.
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
  except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
    raise UserError(f"torch cannot read {path} ({_first_line(e)}): expected the state_dict file "
                    f"{WEIGHTS_FILE} from pytorch-fid's releases") from e
  if not isinstance(state_dict, dict):
    raise UserError(f"{path} holds a {type(state_dict).__name__}, expected a state_dict "
                    f"(name → tensor) such as pytorch-fid's {WEIGHTS_FILE}")
  return {name: value.detach().float().numpy() for name, value in state_dict.items()}


def _first_line(error: Exception) -> str:
  return str(error).strip().split("\n")[0]  # torch's messages run to a dozen lines.


def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def import_weights(src: str, name: str = "inception_v3", root: str | None = None, *,
                   image_size: int = IMAGE_SIZE) -> dict:
  """Stores the FID Inception weights in `src` as feature network `name` under `root`.

  Args:
    src: pytorch-fid's `.pth` (needs torch) or an `.npz` of the same state_dict.
    root: default `feature_store.default_root()`.
    image_size: the side images are resized to; keep FID's 299 except in tests.

  Returns:
    The info written to `<root>/<name>/info.json`.
  """
  _check_image_size(image_size)
  variables = state_dict_to_variables(_read_state_dict(src))
  info = dict(architecture=ARCHITECTURE, feature_dim=FEATURE_DIM, image_size=image_size,
              source=os.path.basename(src), source_sha256=_file_sha256(src))
  return feature_store.write(flax.serialization.to_bytes(variables), name, root, info)
