"""Using a trained workdir: restore its latest state, sample from it, evaluate it."""

import os

import jax
import numpy as np

from jaxgen import conditioning, evaluators, families, images, sharding, train
from jaxgen.errors import UserError


def restore(workdir: str):
  """(config, family, mesh, state) of the latest checkpoint in WORKDIR."""
  return train.restore_run(workdir)


def _require(config, family, capability: str, flag: str, why: str) -> None:
  if not families.supports(family, capability):
    raise UserError(f"{flag}: the {config.family} family {why}")


def sample_uint8(config, family, mesh, state, num: int, seed: int,
                 label: int | None = None, attributes: np.ndarray | None = None) -> np.ndarray:
  """`num` samples as uint8 [num, H, W, C], generated in device-divisible chunks.

  Conditional models get `label` for every sample, or labels cycling through the classes
  (so a grid with num_classes columns has one class per column); models with attributes
  get `attributes` [A] for every sample, rows [N, A] in turn, or else one attribute each
  in turn.
  """
  if num < 1:
    raise UserError(f"--num={num}: expected a positive number of samples")
  chunk = _chunk_size(config, mesh, num)
  cond = conditioning.for_sampling(config, -(-num // chunk) * chunk, label, attributes)
  sample = jax.jit(lambda state, rng, c: family.sample(config, state, rng, chunk, c))
  return _in_chunks(config, mesh, num, chunk, lambda i, rng: sample(
      state, rng, jax.tree.map(lambda v: v[i * chunk:(i + 1) * chunk], cond)), seed)


def _chunk_size(config, mesh, num: int) -> int:
  """At most eval_batch_size (and no more than `num` needs), a multiple of the data axis."""
  devices = mesh.shape[sharding.DATA]
  return _round_up(min(config.eval_batch_size, _round_up(num, devices)), devices)


def _in_chunks(config, mesh, num: int, chunk: int, draw, seed: int) -> np.ndarray:
  """uint8 [num, H, W, C]: draw(i, key i of `seed`) for chunk after chunk, under the mesh."""
  out = []
  with jax.set_mesh(mesh):
    for i in range(-(-num // chunk)):
      generated = draw(i, jax.random.fold_in(jax.random.PRNGKey(seed), i))
      out.append(images.to_uint8(jax.device_get(generated), config.data.normalize))
  return np.concatenate(out)[:num]


def interpolation_uint8(config, family, mesh, state, num: int, steps: int, mode: str,
                        seed: int, label: int | None = None) -> np.ndarray:
  """`num` latent interpolation strips of `steps` images each: uint8 [num * steps, H, W, C]."""
  _require(config, family, "interpolate", "--interpolate", "has no latent space to interpolate in")
  if num < 1 or steps < 2:
    raise UserError(f"--num={num} --steps={steps}: expected at least 1 strip of 2 images")
  cond = conditioning.for_sampling(config, num, label)
  run = jax.jit(lambda state, rng, c: family.interpolate(config, state, rng, num, steps, mode,
                                                         c))
  with jax.set_mesh(mesh):
    generated = jax.device_get(run(state, jax.random.PRNGKey(seed), cond))
  return images.to_uint8(generated, config.data.normalize)


def reconstruction_uint8(config, family, mesh, state, num: int, seed: int) -> np.ndarray:
  """The first `num` eval-split images, each followed by its reconstruction: uint8
  [2 * num, H, W, C]."""
  _require(config, family, "reconstruct", "--reconstruct", "has no encoder")
  if num < 1:
    raise UserError(f"--num={num}: expected a positive number of images")
  real = train.load_data(config, family, config.data.eval_split).images[:num]
  run = jax.jit(lambda state, x, rng: family.reconstruct(config, state, x, rng))
  with jax.set_mesh(mesh):
    out = jax.device_get(run(state, images.from_uint8(real, config.data.normalize),
                             jax.random.PRNGKey(seed)))
  recon = images.to_uint8(out, config.data.normalize)
  return np.stack([real, recon], axis=1).reshape(2 * len(real), *real.shape[1:])


def traversal_uint8(config, family, mesh, state, num: int, steps: int, seed: int) -> np.ndarray:
  """Latent traversals of the first `num` latent dimensions, `steps` images each: uint8
  [num * steps, H, W, C]."""
  _require(config, family, "traverse", "--traverse",
           "has no latent dimensions to traverse; try --interpolate")
  if num < 1 or steps < 2:
    raise UserError(f"--num={num} --steps={steps}: expected at least 1 row of 2 images")
  run = jax.jit(lambda state, rng: family.traverse(config, state, rng, num, steps))
  with jax.set_mesh(mesh):
    out = jax.device_get(run(state, jax.random.PRNGKey(seed)))
  return images.to_uint8(out, config.data.normalize)


def read_low_resolution(path: str, channels: int) -> np.ndarray:
  """The images of FILE.png (one image) or FILE.npz ('images' [N, h, w(, C)]) as uint8
  [N, h, w, channels]; a PNG's mode is converted (grey ↔ RGB, alpha dropped)."""
  if path.endswith(".npz"):
    with np.load(path) as f:
      if "images" not in f:
        raise UserError(f"--in {path!r}: expected an .npz with an 'images' array (as "
                        "`jaxgen sample --out FILE.npz` writes), found " + ", ".join(f.files))
      found = np.asarray(f["images"])
    found = found[..., None] if found.ndim == 3 else found
    if found.ndim != 4 or found.dtype != np.uint8 or found.shape[-1] != channels:
      raise UserError(f"--in {path!r}: expected uint8 images [N, h, w, {channels}], found "
                      f"{found.dtype} {list(found.shape)}")
    return found
  if not path.endswith(".png"):
    raise UserError(f"--in {path!r}: expected a FILE.png or FILE.npz")
  from PIL import Image
  with Image.open(path) as image:
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image, np.uint8)
  return pixels.reshape(1, *pixels.shape[:2], channels)


def upscale_uint8(config, family, mesh, state, low: np.ndarray, seed: int) -> np.ndarray:
  """Super-resolution of uint8 low-resolution images [N, h, w, C]: uint8 [N, H, W, C]."""
  from jaxgen import superres
  sr = superres.options(config)
  if sr is None:
    raise UserError(f"--in: this {config.family} run is not a super-resolution model (its "
                    "config has no superres section); train one, e.g. "
                    "experiments/sr3_fashion_mnist.py")
  expected = superres.low_resolution_shape(sr, family.image_shape(config))
  if tuple(low.shape[1:]) != expected:
    raise UserError(f"--in: images of {low.shape[1]}×{low.shape[2]}×{low.shape[3]}, but this "
                    f"model upscales {expected[0]}×{expected[1]}×{expected[2]} (÷"
                    f"{sr.factor} of {config.model.image_size}); resize them first")
  chunk = _chunk_size(config, mesh, len(low))
  run = jax.jit(lambda state, rng, x: family.sample(config, state, rng, chunk, {"low_res": x}))
  # The last chunk padded with copies of its last image, so every call has one shape.
  padded = np.concatenate([low, np.repeat(low[-1:], -len(low) % chunk, 0)])
  return _in_chunks(config, mesh, len(low), chunk, lambda i, rng: run(
      state, rng, images.from_uint8(padded[i * chunk:(i + 1) * chunk], "symmetric")), seed)


def _round_up(n, k):
  return -(-n // k) * k


def write_samples(path: str, uint8_images: np.ndarray, columns: int | None = None) -> None:
  """FILE.npz → key 'images' [N, H, W, C] uint8; FILE.png → a grid of `columns`, or the
  image itself when there is one."""
  if path.endswith(".npz"):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, images=uint8_images)
  elif path.endswith(".png"):
    images.write_png(path, uint8_images[0] if len(uint8_images) == 1
                     else images.grid(uint8_images, columns))
  else:
    raise UserError(f"--out {path!r}: expected a FILE.npz or FILE.png")


def evaluate(config, family, mesh, state) -> dict:
  """The family's test metrics over the whole eval split, with what they were computed on."""
  source = train.load_data(config, family, config.data.eval_split)
  runs = evaluators.create(config, family, mesh, source, report=True)
  with jax.set_mesh(mesh):
    metrics = {k: v for e in runs for k, v in e.run(state)}
  return {"step": int(jax.device_get(state.step)), "dataset": config.data.name,
          "split": config.data.eval_split, **metrics}
