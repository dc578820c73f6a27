"""Optimisers and learning-rate schedules from config."""

import ml_collections
import optax

from jaxgen.errors import UserError


def schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warm-up into 'constant' or 'cosine' decay over the run."""
  warmup = cfg.get("warmup_steps", 0)
  if cfg.schedule == "constant":
    main = optax.constant_schedule(cfg.learning_rate)
  elif cfg.schedule == "cosine":
    main = optax.cosine_decay_schedule(cfg.learning_rate, max(total_steps - warmup, 1))
  else:
    raise UserError(f"optim.schedule={cfg.schedule!r}: expected 'constant' or 'cosine'")
  if not warmup:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, cfg.learning_rate, warmup), main], [warmup])


def create(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """An optax chain: optional global-norm clipping, then adam/adamw/sgd with the schedule."""
  lr = schedule(cfg, total_steps)
  if cfg.name == "adam":
    opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
  elif cfg.name == "adamw":
    opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  elif cfg.name == "sgd":
    opt = optax.sgd(lr, momentum=cfg.b1 or None)
  else:
    raise UserError(f"optim.name={cfg.name!r}: expected 'adam', 'adamw' or 'sgd'")
  if cfg.get("grad_clip", 0.0):
    opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
  return opt


def default_config(learning_rate: float = 1e-3, b1: float = 0.9) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name="adam", learning_rate=learning_rate, b1=b1, b2=0.999, weight_decay=0.0,
      schedule="constant", warmup_steps=0, grad_clip=0.0))
