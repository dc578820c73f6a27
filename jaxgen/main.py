"""The `jaxgen` command: train / sample / evaluate. Parses arguments and calls the library."""

import argparse
import json
import os
import sys

from jaxgen.errors import UserError


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="jaxgen", description="Train, sample and evaluate generative image models.")
  commands = parser.add_subparsers(dest="command", required=True)
  train = commands.add_parser(
      "train", help="train (or resume) an experiment",
      epilog="Override any config key with --config.KEY=VALUE, e.g. --config.total_steps=500.")
  train.add_argument("--config", required=True, help="experiments/NAME.py[:variant]")
  train.add_argument("--workdir", required=True, help="output folder; re-run to resume")
  sample = commands.add_parser("sample", help="sample from a workdir's latest checkpoint")
  sample.add_argument("--workdir", required=True)
  sample.add_argument("--num", type=int, default=64)
  sample.add_argument("--out", required=True, help="FILE.npz (uint8 'images') or FILE.png")
  sample.add_argument("--seed", type=int, default=0)
  sample.add_argument("--label", type=int, default=None,
                      help="class-conditional models: sample this class only (default: "
                      "cycle through the classes, one per grid column)")
  sample.add_argument("--interpolate", choices=("linear", "spherical"), default=None,
                      help="write --num latent interpolation strips of --steps images instead")
  sample.add_argument("--reconstruct", action="store_true",
                      help="VAEs: the first --num eval images, each beside its reconstruction")
  sample.add_argument("--traverse", action="store_true",
                      help="VAEs: vary each of the first --num latent dimensions over --steps")
  sample.add_argument("--steps", type=int, default=10,
                      help="images per interpolation strip or traversal row")
  evaluate = commands.add_parser(
      "evaluate", help="print test metrics of a workdir as JSON",
      epilog="Override how it evaluates (not what was trained) with --config.evaluation.KEY="
      "VALUE or --config.eval_batch_size=N, e.g. --config.evaluation.iwae_k=1000.")
  evaluate.add_argument("--workdir", required=True)
  features = commands.add_parser(
      "train-features", help="train the in-domain feature network for FID/KID/precision-recall")
  features.add_argument("--dataset", default="fashion_mnist")
  features.add_argument("--steps", type=int, default=1800)  # 91.3% test accuracy, ~5 CPU min.
  features.add_argument("--batch-size", type=int, default=128)
  features.add_argument("--seed", type=int, default=0)
  features.add_argument("--data-dir", default=None, help="TFDS data_dir")
  features.add_argument("--out-dir", default=None,
                        help="features root (default $JAXGEN_FEATURES_DIR or ~/.cache/jaxgen/features)")
  inception = commands.add_parser(
      "import-inception", help="import the FID Inception weights (a local pytorch-fid "
      ".pth or .npz file) as feature network for RGB datasets")
  inception.add_argument("--weights", required=True,
                         help="e.g. pt_inception-2015-12-05-6726825d.pth (torch needed) or .npz")
  inception.add_argument("--name", default="inception_v3")
  inception.add_argument("--out-dir", default=None,
                         help="features root (default $JAXGEN_FEATURES_DIR or ~/.cache/jaxgen/features)")
  for sub in (train, sample, evaluate, features, inception):
    group = sub.add_argument_group("multi-host (run the same command on every host)")
    group.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize(); TPU pods and SLURM are "
                       "auto-detected, elsewhere give the three flags below")
    group.add_argument("--coordinator", help="HOST:PORT of process 0")
    group.add_argument("--num-processes", type=int)
    group.add_argument("--process-id", type=int)
  return parser


def run(argv: list[str]) -> int:
  from jaxgen import config as config_lib  # Light; the heavy imports wait for a valid command.
  rest, overrides = config_lib.split_override_args(argv)
  args = _parser().parse_args(rest)
  if args.command == "evaluate":
    misplaced = sorted(k for k in overrides if not _evaluation_key(k))
    if misplaced:
      raise UserError(f"`jaxgen evaluate` takes --config.evaluation.* and "
                      f"--config.eval_batch_size only, got {misplaced}: the rest of a run's "
                      "config is what it was trained with")
  elif overrides and args.command != "train":
    raise UserError(f"--config.* overrides apply to `jaxgen train` (and evaluation keys to "
                    f"`jaxgen evaluate`) only, got {sorted(overrides)}")
  config = config_lib.load(args.config, overrides) if args.command == "train" else None
  _setup_runtime(args)
  if args.command == "train":
    from jaxgen import train
    signum = train.train_and_evaluate(config, args.workdir)
    return 128 + signum if signum else 0
  if args.command == "train-features":
    from jaxgen.evaluators import features as features_lib
    info = features_lib.main_train_features(args.dataset, args.steps, args.batch_size, args.seed,
                                            args.data_dir, args.out_dir)
    print(json.dumps(info, sort_keys=True))
    return 0
  if args.command == "import-inception":
    from jaxgen.evaluators import inception as inception_lib
    print(json.dumps(inception_lib.import_weights(args.weights, args.name, args.out_dir),
                     sort_keys=True))
    return 0
  from jaxgen import families, inference
  config, family, mesh, state = inference.restore(args.workdir)
  if args.command == "sample":
    if sum(map(bool, (args.interpolate, args.reconstruct, args.traverse))) > 1:
      raise UserError("--interpolate, --reconstruct and --traverse: pick one")
    if args.reconstruct:
      samples = inference.reconstruction_uint8(config, family, mesh, state, args.num, args.seed)
      columns = 16  # Eight (input, reconstruction) pairs per row.
    elif args.traverse:
      samples = inference.traversal_uint8(config, family, mesh, state, args.num, args.steps,
                                          args.seed)
      columns = args.steps
    elif args.interpolate:
      samples = inference.interpolation_uint8(config, family, mesh, state, args.num, args.steps,
                                              args.interpolate, args.seed, args.label)
      columns = args.steps
    else:
      samples = inference.sample_uint8(config, family, mesh, state, args.num, args.seed,
                                       args.label)
      columns = families.num_classes(config) if args.label is None else None
    inference.write_samples(args.out, samples, columns or None)
    print(f"wrote {len(samples)} samples {samples.shape[1:]} to {args.out}", file=sys.stderr)
  else:
    config_lib.apply_overrides(config, overrides)  # For this evaluation only; not saved.
    print(json.dumps(inference.evaluate(config, family, mesh, state), sort_keys=True))
  return 0


def _evaluation_key(key: str) -> bool:
  return key.startswith("evaluation.") or key == "eval_batch_size"


def _setup_runtime(args) -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import jax
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
  explicit = (args.coordinator, args.num_processes, args.process_id)
  if any(v is not None for v in explicit) and not args.distributed:
    raise UserError("--coordinator/--num-processes/--process-id need --distributed")
  if args.distributed:
    jax.distributed.initialize(*explicit)


def main(argv: list[str] | None = None) -> None:
  try:
    code = run(sys.argv[1:] if argv is None else argv)
  except UserError as e:
    print(f"jaxgen: error: {e}", file=sys.stderr)
    code = 2
  except KeyboardInterrupt:
    print("jaxgen: interrupted", file=sys.stderr)
    code = 130
  sys.exit(code)


if __name__ == "__main__":
  main()
