"""jaxgen's DCGAN in PyTorch (fp32, eager): the reference for the DCGAN step's speed.

Same layers, widths and parameter counts as `jaxgen.models.dcgan`; the step is the standard
PyTorch DCGAN iteration with the non-saturating loss and Adam(2e-4, betas=(0.5, 0.999)).

  python benchmarks/peers/torch_dcgan.py --image-size 64 --channels 3 --batch-size 64
"""

import argparse
import json
import sys

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


def make_step(generator, discriminator, latent_dim, memory_format):
  """The DCGAN training iteration: D on real and fake.detach(), then G through D(fake)."""
  g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()

  def step(real):
    batch = real.shape[0]
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    fake = generator(torch.randn(batch, latent_dim)).contiguous(memory_format=memory_format)
    d_opt.zero_grad(set_to_none=True)
    d_loss = bce(discriminator(real), ones) + bce(discriminator(fake.detach()), zeros)
    d_loss.backward()
    d_opt.step()
    g_opt.zero_grad(set_to_none=True)
    g_loss = bce(discriminator(fake), ones)
    g_loss.backward()
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

def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--features", type=int, default=64)
  parser.add_argument("--latent-dim", type=int, default=100)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=None)
  parser.add_argument("--channels-last", action="store_true")
  args = parser.parse_args()
  print(json.dumps(images_per_second(
      args.batch_size, args.steps, args.warmup, args.image_size, args.channels, args.features,
      args.latent_dim, args.channels_last, args.threads)))


if __name__ == "__main__":
  main()
