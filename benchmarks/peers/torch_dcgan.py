"""jaxgen's DCGAN in PyTorch (fp32, eager): the reference for the DCGAN step's speed and,
with --train, for what the same training run produces.

Same layers, widths and parameter counts as `jaxgen.models.dcgan`; the step is the standard
PyTorch DCGAN iteration with the non-saturating loss and Adam(2e-4, betas=(0.5, 0.999)).

  python benchmarks/peers/torch_dcgan.py --image-size 64 --channels 3 --batch-size 64
  python benchmarks/peers/torch_dcgan.py --train --steps 5000 --data TRAIN.npz \
      --out SAMPLES.npz [--num-samples 10000] [--threads 2]

--train follows `experiments/dcgan_fashion_mnist.py` (constant learning rate, batch 64, EMA
of the generator with decay 0.999 and jaxgen's warm-up; --batch-size, --ema-decay, --seed
change them) on uint8 'images' [N, H, W, C] from TRAIN.npz, then writes the EMA generator's
samples as uint8 'images' into SAMPLES.npz, and with --raw-out RAW.npz the raw generator's.
Progress goes to stderr, one JSON record to stdout.
"""

import argparse
import copy
import json
import statistics
import sys
import time

import numpy as np

try:
  import torch
  from torch import nn
except ImportError:
  sys.exit("benchmarks/peers needs PyTorch: pip install -e '.[peers]' (torch==2.13.0)")

import timing  # benchmarks/peers/timing.py, beside this script


def stages(image_size: int) -> tuple[int, int]:
  """(base, n) with image_size = base * 2**n, base 4 or 7, as jaxgen.models.dcgan.stages."""
  for base in (4, 7):
    n = (image_size // base).bit_length() - 1
    if n >= 1 and base * 2 ** n == image_size:
      return base, n
  raise ValueError(f"image_size={image_size}: expected 4 or 7 times a power of two")


def _batch_norm(width):
  # PyTorch momentum 0.1 == Flax momentum 0.9.
  return nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)


class Generator(nn.Module):
  """z [b, latent] -> images [b, channels, size, size] in [-1, 1]."""

  def __init__(self, image_size, channels, features=64, latent_dim=100):
    super().__init__()
    self.base, n = stages(image_size)
    self.width = features * 2 ** (n - 1)
    self.project = nn.Linear(latent_dim, self.base * self.base * self.width, bias=False)
    layers, width = [_batch_norm(self.width), nn.ReLU()], self.width
    for stage in range(n):
      last = stage == n - 1
      out = channels if last else width // 2
      layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last))
      layers += [nn.Tanh()] if last else [_batch_norm(out), nn.ReLU()]
      width = out
    self.body = nn.Sequential(*layers)

  def forward(self, z):
    x = self.project(z).view(z.shape[0], self.width, self.base, self.base)
    return self.body(x)


class Discriminator(nn.Module):
  """images [b, channels, size, size] -> logits [b]."""

  def __init__(self, image_size, channels, features=64, norm="batch"):
    super().__init__()
    base, n = stages(image_size)
    layers, width = [], channels
    for stage in range(n):
      normalize = norm == "batch" and stage > 0
      out = features * 2 ** stage
      layers.append(nn.Conv2d(width, out, 4, 2, 1, bias=not normalize))
      layers += [_batch_norm(out)] if normalize else []
      layers.append(nn.LeakyReLU(0.2))
      width = out
    self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * base * base, 1))

  def forward(self, x):
    return self.body(x)[:, 0]


def dcgan_init(module):
  """Weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


def make_step(generator, discriminator, latent_dim, memory_format, d_grads_in_g_step=True):
  """The DCGAN training iteration: D on real and fake.detach(), then G through D(fake).

  The textbook G backward also fills D's .grad, which the next zero_grad discards; with
  d_grads_in_g_step=False it stops at G's parameters, the work jaxgen's step does (it
  differentiates the G loss only with respect to the fake images): ~14% of a DCGAN-28 step
  on 2 cores.
  """
  g_params = list(generator.parameters())
  g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()

  def step(real, z=None):  # z: the latents to use (check_dcgan_step.py), else drawn here.
    batch = real.shape[0]
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    z = torch.randn(batch, latent_dim) if z is None else z
    fake = generator(z).contiguous(memory_format=memory_format)
    d_opt.zero_grad(set_to_none=True)
    d_loss = bce(discriminator(real), ones) + bce(discriminator(fake.detach()), zeros)
    d_loss.backward()
    d_opt.step()
    g_opt.zero_grad(set_to_none=True)
    g_loss = bce(discriminator(fake), ones)
    g_loss.backward(inputs=None if d_grads_in_g_step else g_params)
    g_opt.step()
    return d_loss.item(), g_loss.item()
  return step


def images_per_second(batch_size, steps, warmup, image_size=28, channels=1, features=64,
                      latent_dim=100, channels_last=False, threads=None):
  """Times `steps` DCGAN iterations after `warmup`; returns the JSON record as a dict."""
  memory_format = timing.setup(threads, channels_last)
  generator = Generator(image_size, channels, features, latent_dim).to(memory_format=memory_format)
  discriminator = Discriminator(image_size, channels, features).to(memory_format=memory_format)
  generator.apply(dcgan_init)
  discriminator.apply(dcgan_init)
  real = (torch.rand(batch_size, channels, image_size, image_size) * 2 - 1).contiguous(
      memory_format=memory_format)
  step = make_step(generator, discriminator, latent_dim, memory_format)
  return timing.record(f"dcgan{image_size}", batch_size, lambda: step(real), steps, warmup,
                       channels_last)


def ema_decay_at(decay, step):
  """jaxgen.train_state.ema_decay_at: the random initial weights must not dominate early."""
  return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema, live, decay, step):
  """ema <- d*ema + (1-d)*live over parameters only; BatchNorm statistics stay the live ones."""
  d = ema_decay_at(decay, step)
  for e, p in zip(ema.parameters(), live.parameters()):
    e.mul_(d).add_(p, alpha=1.0 - d)


def load_images(path, image_size, channels):
  """uint8 [N, channels, size, size] from the 'images' [N, size, size, channels] of an npz."""
  with np.load(path) as f:
    images = f["images"]
  if images.dtype != np.uint8 or images.shape[1:] != (image_size, image_size, channels):
    sys.exit(f"{path}: 'images' is {images.dtype} {list(images.shape)}, expected uint8 "
             f"[N, {image_size}, {image_size}, {channels}]: pass --image-size/--channels")
  return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def batches(images, batch_size, rng):
  """Float batches in [-1, 1], a fresh permutation each epoch whose last n % batch_size
  images are dropped, as jaxgen's input pipeline does."""
  per_epoch = len(images) // batch_size
  while True:
    order = torch.from_numpy(rng.permutation(len(images)))
    for i in range(per_epoch):
      batch = images[order[i * batch_size:(i + 1) * batch_size]]
      yield batch.float() / 255.0 * 2.0 - 1.0  # jaxgen's data.normalize='symmetric'.


@torch.no_grad()
def sample_uint8(generator, num, latent_dim, chunk=256):
  """uint8 [num, size, size, channels] as jaxgen.families.gan.sample draws them: BatchNorm in
  inference mode, with the running statistics `generator` holds."""
  generator.eval()
  out = [generator(torch.randn(min(chunk, num - i), latent_dim)).permute(0, 2, 3, 1).numpy()
         for i in range(0, num, chunk)]
  generator.train()
  return np.clip(np.round((np.concatenate(out) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sample_ema_uint8(ema, live, num, latent_dim):
  """The EMA weights with the training generator's running statistics, as jaxgen's default
  (`sampling.batch_stats=running`) samples them."""
  with torch.no_grad():
    for e, b in zip(ema.buffers(), live.buffers()):
      e.copy_(b)
  return sample_uint8(ema, num, latent_dim)


def train(data, out, steps, num_samples, batch_size=64, image_size=28, channels=1,
          features=64, latent_dim=100, ema_decay=0.999, threads=2, seed=0, log_every=100,
          raw_out=None):
  """Trains on `data`, writes the EMA generator's samples to `out` (and the raw generator's
  to `raw_out`, if given); returns the JSON record as a dict.

  images_per_s counts the whole loop after setup; interval_images_per_s_median is the median
  over log intervals after the first (the statistic jaxgen's metrics.jsonl gives).
  """
  timing.setup(threads, channels_last=False)
  torch.manual_seed(seed)
  images = load_images(data, image_size, channels)
  generator = Generator(image_size, channels, features, latent_dim)
  discriminator = Discriminator(image_size, channels, features)
  generator.apply(dcgan_init)
  discriminator.apply(dcgan_init)
  ema = copy.deepcopy(generator).requires_grad_(False)
  step = make_step(generator, discriminator, latent_dim, torch.contiguous_format,
                   d_grads_in_g_step=False)
  stream = batches(images, batch_size, np.random.default_rng(seed))
  start = mark = time.perf_counter()
  rates, marked = [], 0
  for t in range(steps):
    d_loss, g_loss = step(next(stream))
    ema_update(ema, generator, ema_decay, t)
    if (t + 1) % log_every == 0 or t + 1 == steps:
      now = time.perf_counter()
      rates.append((t + 1 - marked) * batch_size / (now - mark))
      mark, marked = now, t + 1
      print(f"step {t + 1}/{steps} | d_loss {d_loss:.4g} | g_loss {g_loss:.4g} | "
            f"{rates[-1]:,.0f} img/s | elapsed {now - start:.0f}s", file=sys.stderr, flush=True)
  wall = time.perf_counter() - start
  np.savez_compressed(out, images=sample_ema_uint8(ema, generator, num_samples, latent_dim))
  if raw_out:  # After the EMA's draws, so `out` is the same with or without it.
    np.savez_compressed(raw_out, images=sample_uint8(generator, num_samples, latent_dim))
  return {"model": f"dcgan{image_size}", "framework": "torch", "mode": "train", "steps": steps,
          "batch_size": batch_size, "threads": torch.get_num_threads(),
          "train_wall_s": round(wall, 2), "images_per_s": round(steps * batch_size / wall, 1),
          "interval_images_per_s_median": round(statistics.median(rates[1:] or rates), 1),
          "d_loss": round(d_loss, 4), "g_loss": round(g_loss, 4),
          "ema_decay": ema_decay, "seed": seed, "num_samples": num_samples, "samples": out,
          "raw_samples": raw_out}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--features", type=int, default=64)
  parser.add_argument("--latent-dim", type=int, default=100)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--channels-last", action="store_true")
  parser.add_argument("--train", action="store_true", help="train on --data (see above)")
  parser.add_argument("--data", help="FILE.npz with uint8 'images' [N, H, W, C]")
  parser.add_argument("--out", help="FILE.npz for the EMA generator's uint8 samples")
  parser.add_argument("--raw-out", help="FILE.npz for the raw (trained) generator's samples")
  parser.add_argument("--ema-decay", type=float, default=0.999)
  parser.add_argument("--num-samples", type=int, default=10_000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--log-every", type=int, default=100)
  args = parser.parse_args()
  if args.train:
    if not (args.data and args.out):
      parser.error("--train needs --data TRAIN.npz and --out SAMPLES.npz")
    if args.channels_last:
      parser.error("--channels-last is a timing option; --train runs NCHW")
    if args.steps < 1 or args.num_samples < 1:
      parser.error(f"--steps={args.steps} --num-samples={args.num_samples}: expected both >= 1")
    print(json.dumps(train(
        args.data, args.out, args.steps, args.num_samples, args.batch_size, args.image_size,
        args.channels, args.features, args.latent_dim, args.ema_decay, threads=args.threads,
        seed=args.seed, log_every=args.log_every, raw_out=args.raw_out)))
    return
  print(json.dumps(images_per_second(
      args.batch_size, args.steps, args.warmup, args.image_size, args.channels, args.features,
      args.latent_dim, args.channels_last, args.threads)))


if __name__ == "__main__":
  main()
