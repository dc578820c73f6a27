"""jaxgen's diffusion U-Net and EDM training step in PyTorch (fp32, eager): the reference for
the diffusion step's speed.

Same layers, widths and parameter count as `jaxgen.models.unet.UNet` (`vs_torch.py` refuses
to compare if the counts differ): ADM residual blocks (GroupNorm, SiLU, 3×3 convolutions,
scale-shift noise embedding, dropout), self-attention at the listed sizes and in the middle,
stride-2 3×3 downsampling, nearest-neighbour upsampling and a 3×3 convolution, skips
concatenated on the way up, Fourier noise features, a class embedding with a null class. The
step is jaxgen's diffusion `train_step`: EDM's log-normal σ, preconditioning and loss weight,
label dropout 0.1, Adam with global-norm clipping at 1, then the parameter EMA.

  python benchmarks/peers/torch_unet.py --features 32 --batch-size 64 --threads 2
"""

import argparse
import json
import math
import sys

import numpy as np

try:
  import torch
  from torch import nn
  from torch.nn import functional as F
except ImportError:
  sys.exit("benchmarks/peers needs PyTorch: pip install -e '.[peers]' (torch==2.13.0)")

import timing  # benchmarks/peers/timing.py, beside this script

HEAD_CHANNELS = 64
SIGMA_DATA, P_MEAN, P_STD = 0.5, -1.2, 1.2


def groups(channels):
  return max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)


def norm(channels):
  return nn.GroupNorm(groups(channels), channels, eps=1e-6)  # Flax's epsilon.


def conv3(cin, cout, stride=1, zero=False):
  layer = nn.Conv2d(cin, cout, 3, stride, 1)
  if zero:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
  return layer


class ResBlock(nn.Module):
  def __init__(self, cin, cout, emb, dropout):
    super().__init__()
    self.norm1, self.conv1 = norm(cin), conv3(cin, cout)
    self.scale_shift = nn.Linear(emb, 2 * cout)
    self.norm2, self.drop = norm(cout), nn.Dropout(dropout)
    self.conv2 = conv3(cout, cout, zero=True)
    self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

  def forward(self, x, emb):
    h = self.conv1(F.silu(self.norm1(x)))
    scale, shift = self.scale_shift(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
    h = self.norm2(h) * (1 + scale) + shift
    return self.skip(x) + self.conv2(self.drop(F.silu(h)))


class Attention(nn.Module):
  def __init__(self, c):
    super().__init__()
    self.heads = c // HEAD_CHANNELS if c % HEAD_CHANNELS == 0 else 1
    self.norm, self.qkv, self.out = norm(c), nn.Linear(c, 3 * c), nn.Linear(c, c)
    nn.init.zeros_(self.out.weight)
    nn.init.zeros_(self.out.bias)

  def forward(self, x):
    b, c, hgt, wid = x.shape
    h = self.norm(x).flatten(2).transpose(1, 2)  # [b, hw, c]
    qkv = self.qkv(h).view(b, hgt * wid, self.heads, 3 * c // self.heads)
    q, k, v = (t.transpose(1, 2) for t in qkv.chunk(3, dim=-1))  # [b, heads, hw, d]
    h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, hgt * wid, c)
    return x + self.out(h).transpose(1, 2).reshape(b, c, hgt, wid)


class UNet(nn.Module):
  """x [b, channels, size, size], c_noise [b], labels [b] -> F [b, channels, size, size]."""

  def __init__(self, image_size=28, channels=1, features=32, multipliers=(1, 2, 2), blocks=2,
               attention=(7,), dropout=0.1, num_classes=10):
    super().__init__()
    emb = 4 * features
    freqs = np.random.default_rng(0).standard_normal(features // 2).astype(np.float32)
    self.register_buffer("freqs", torch.from_numpy(2 * math.pi * 16.0 * freqs))
    self.embed = nn.Sequential(nn.Linear(features, emb), nn.SiLU(), nn.Linear(emb, emb))
    self.classes = nn.Embedding(num_classes + 1, emb) if num_classes else None
    self.conv_in = conv3(channels, features)
    self.down, widths, c, size = nn.ModuleList(), [features], features, image_size
    for level, mult in enumerate(multipliers):
      for _ in range(blocks):
        self.down.append(self._block(c, features * mult, emb, dropout, size in attention))
        c = features * mult
        widths.append(c)
      if level < len(multipliers) - 1:
        self.down.append(conv3(c, c, stride=2))
        widths.append(c)
        size //= 2
    self.middle = nn.ModuleList([ResBlock(c, c, emb, dropout), Attention(c),
                                 ResBlock(c, c, emb, dropout)])
    self.up = nn.ModuleList()
    for level, mult in reversed(list(enumerate(multipliers))):
      for _ in range(blocks + 1):
        self.up.append(self._block(c + widths.pop(), features * mult, emb, dropout,
                                   size in attention))
        c = features * mult
      if level > 0:
        self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3(c, c)))
        size *= 2
    self.norm_out, self.conv_out = norm(c), conv3(c, channels, zero=True)

  @staticmethod
  def _block(cin, cout, emb, dropout, attend):
    block = nn.ModuleList([ResBlock(cin, cout, emb, dropout)])
    if attend:
      block.append(Attention(cout))
    return block

  def forward(self, x, c_noise, labels):
    angles = c_noise[:, None] * self.freqs[None]
    emb = self.embed(torch.cat([angles.cos(), angles.sin()], dim=-1))
    if self.classes is not None:
      emb = emb + self.classes(labels)
    h = self.conv_in(x)
    skips = [h]
    for layer in self.down:
      h = self._run(layer, h, emb)
      skips.append(h)
    h = self.middle[2](self.middle[1](self.middle[0](h, emb)), emb)
    for layer in self.up:
      h = self._run(layer, torch.cat([h, skips.pop()], 1) if isinstance(layer, nn.ModuleList)
                    else h, emb)
    return self.conv_out(F.silu(self.norm_out(h)))

  @staticmethod
  def _run(layer, h, emb):
    if not isinstance(layer, nn.ModuleList):
      return layer(h)
    h = layer[0](h, emb)
    return layer[1](h) if len(layer) > 1 else h


def edm_loss(model, x, labels, num_classes, label_dropout=0.1):
  """jaxgen's diffusion loss: λ(σ)·‖D(x + σn; σ) − x‖² averaged over pixels and batch."""
  b = x.shape[0]
  sigma = torch.exp(P_MEAN + P_STD * torch.randn(b)).clamp(0.002, 80.0)[:, None, None, None]
  drop = torch.rand(b) < label_dropout
  labels = torch.where(drop, torch.full_like(labels, num_classes), labels)
  c_skip = SIGMA_DATA ** 2 / (sigma ** 2 + SIGMA_DATA ** 2)
  c_out = sigma * SIGMA_DATA / (sigma ** 2 + SIGMA_DATA ** 2).sqrt()
  c_in = 1.0 / (sigma ** 2 + SIGMA_DATA ** 2).sqrt()
  noisy = x + sigma * torch.randn_like(x)
  denoised = c_skip * noisy + c_out * model(c_in * noisy, sigma.flatten().log() / 4, labels)
  weight = (sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2
  return (weight * (denoised - x) ** 2).mean()


def images_per_second(batch_size, steps, warmup, threads=None, channels_last=False, **unet):
  """Times `steps` EDM steps (loss, backward, clipped Adam, EMA) after `warmup`."""
  memory_format = timing.setup(threads, channels_last)
  model = UNet(**unet).to(memory_format=memory_format)
  ema = [p.detach().clone() for p in model.parameters()]
  opt = torch.optim.Adam(model.parameters(), lr=5e-4)
  size, channels = unet.get("image_size", 28), unet.get("channels", 1)
  num_classes = unet.get("num_classes", 10)
  x = (torch.rand(batch_size, channels, size, size) * 2 - 1).contiguous(
      memory_format=memory_format)
  labels = torch.randint(0, max(num_classes, 1), (batch_size,))

  def step():
    opt.zero_grad(set_to_none=True)
    loss = edm_loss(model, x, labels, num_classes)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1 - 0.999)
    loss.item()

  out = timing.record(f"unet{size}", batch_size, step, steps, warmup, channels_last)
  out["parameters"] = sum(p.numel() for p in model.parameters())
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--features", type=int, default=32)
  parser.add_argument("--num-classes", type=int, default=10)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=None)
  parser.add_argument("--channels-last", action="store_true")
  args = parser.parse_args()
  print(json.dumps(images_per_second(
      args.batch_size, args.steps, args.warmup, args.threads, args.channels_last,
      image_size=args.image_size, channels=args.channels, features=args.features,
      num_classes=args.num_classes)))


if __name__ == "__main__":
  main()
