"""jaxgen's conv VAE in PyTorch (fp32, eager): the reference for the VAE step's speed.

Same layers and parameter count as `jaxgen.models.vae.ConvVAE` (Bernoulli likelihood); the
step is one Adam(1e-3) update on the negative ELBO: BCE-with-logits summed per image plus
the analytic KL, averaged over the batch.

  python benchmarks/peers/torch_vae.py --image-size 28 --batch-size 128
"""

import argparse
import json
import sys

try:
  import torch
  from torch import nn
  from torch.nn import functional as F
except ImportError:
  sys.exit("benchmarks/peers needs PyTorch: pip install -e '.[peers]' (torch==2.13.0)")

import timing  # benchmarks/peers/timing.py, beside this script

HIDDEN = 256


class ConvVAE(nn.Module):
  """x [b, channels, size, size] in {0, 1} -> (logits like x, mean, logvar [b, latent])."""

  def __init__(self, image_size, channels, latent_dim=32, features=32):
    super().__init__()
    self.side, self.width = image_size // 4, 2 * features
    flat = self.side * self.side * self.width
    self.encoder = nn.Sequential(
        nn.Conv2d(channels, features, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(features, self.width, 4, 2, 1), nn.ReLU(), nn.Flatten(),
        nn.Linear(flat, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * latent_dim))
    self.project = nn.Sequential(
        nn.Linear(latent_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, flat), nn.ReLU())
    self.upsample = nn.Sequential(
        nn.ConvTranspose2d(self.width, features, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(features, channels, 4, 2, 1))

  def forward(self, x):
    mean, logvar = self.encoder(x).chunk(2, dim=-1)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    h = self.project(z).view(x.shape[0], self.width, self.side, self.side)
    return self.upsample(h), mean, logvar


def negative_elbo(model, x):
  logits, mean, logvar = model(x)
  recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)
  kl = 0.5 * (logvar.exp() + mean ** 2 - 1.0 - logvar).sum(-1)
  return (recon + kl).mean()


def images_per_second(batch_size, steps, warmup, image_size=28, channels=1, latent_dim=32,
                      features=32, channels_last=False, threads=None):
  """Times `steps` Adam steps on the negative ELBO after `warmup`; returns the JSON record."""
  memory_format = timing.setup(threads, channels_last)
  model = ConvVAE(image_size, channels, latent_dim, features).to(memory_format=memory_format)
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  x = (torch.rand(batch_size, channels, image_size, image_size) < 0.5).float().contiguous(
      memory_format=memory_format)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = negative_elbo(model, x)
    loss.backward()
    opt.step()
    loss.item()

  return timing.record(f"conv_vae{image_size}", batch_size, step, steps, warmup, channels_last)

def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--latent-dim", type=int, default=32)
  parser.add_argument("--features", type=int, default=32)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=None)
  parser.add_argument("--channels-last", action="store_true")
  args = parser.parse_args()
  print(json.dumps(images_per_second(
      args.batch_size, args.steps, args.warmup, args.image_size, args.channels,
      args.latent_dim, args.features, args.channels_last, args.threads)))


if __name__ == "__main__":
  main()
