"""The `jaxgen` command: train / sample / evaluate. Parses arguments and calls the library."""

import argparse
import json
import os
import sys

from jaxgen.errors import UserError

VERBOSE_ENV = "JAXGEN_VERBOSE"
# What `sample` and `evaluate` may override for one call (not saved): how a trained model is
# sampled and evaluated, never what was trained.
_CALL_OVERRIDES = {"sample": ("sampling.",), "upscale": ("sampling.", "eval_batch_size"),
                   "evaluate": ("sampling.", "evaluation.", "eval_batch_size")}
_FEATURES_ROOT_HELP = "features root (default $JAXGEN_FEATURES_DIR or ~/.cache/jaxgen/features)"


class _Parser(argparse.ArgumentParser):
  """argparse whose errors are UserErrors: one line, like every other bad input."""

  def error(self, message: str):
    raise UserError(f"{message} (see `{self.prog} -h`)")


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog="jaxgen", description="Train, sample and evaluate generative image models.")
  commands = parser.add_subparsers(dest="command", required=True)
  train = commands.add_parser(
      "train", help="train (or resume) an experiment",
      epilog="Override any config key with --config.KEY=VALUE, e.g. --config.total_steps=500.")
  train.add_argument("--config", required=True, help="experiments/NAME.py[:variant]")
  train.add_argument("--workdir", required=True, help="output folder; re-run to resume")
  sample = commands.add_parser(
      "sample", help="sample from a workdir's latest checkpoint",
      epilog="Override how it samples, for this call only (not saved), with "
      "--config.sampling.KEY=VALUE, e.g. --config.sampling.temperature=0.8 or, for GANs, "
      "--config.sampling.truncation=0.7; an unknown key's error lists the run's keys.")
  sample.add_argument("--workdir", required=True)
  sample.add_argument("--num", type=int, default=64)
  sample.add_argument("--out", required=True, help="FILE.npz (uint8 'images') or FILE.png")
  sample.add_argument("--seed", type=int, default=0)
  sample.add_argument("--label", type=int, default=None,
                      help="class-conditional models: sample this class only (default: "
                      "cycle through the classes, one per grid column)")
  sample.add_argument("--prompt", default=None,
                      help="class-conditional models: sample the class of this name, e.g. "
                      "\"ankle boot\" (the dataset's own class names)")
  sample.add_argument("--condition", default=None, metavar="FILE.npy",
                      help="models with attributes: float vectors [A] for every sample, or "
                      "[N, A] taken in turn (one per grid column), e.g. text embeddings")
  sample.add_argument("--interpolate", choices=("linear", "spherical"), default=None,
                      help="write --num latent interpolation strips of --steps images instead")
  sample.add_argument("--reconstruct", action="store_true",
                      help="VAEs: the first --num eval images, each beside its reconstruction")
  sample.add_argument("--traverse", action="store_true",
                      help="VAEs: vary each of the first --num latent dimensions over --steps")
  sample.add_argument("--steps", type=int, default=10,
                      help="images per interpolation strip or traversal row")
  upscale = commands.add_parser(
      "upscale", help="upscale low-resolution images with a super-resolution run",
      epilog="Sampling knobs as for sample: --config.sampling.KEY=VALUE.")
  upscale.add_argument("--workdir", required=True)
  upscale.add_argument("--in", dest="input", required=True,
                       help="FILE.png (one image) or FILE.npz (uint8 'images' [N, h, w, C])")
  upscale.add_argument("--out", required=True,
                       help="FILE.npz (uint8 'images') or FILE.png (a grid)")
  upscale.add_argument("--seed", type=int, default=0)
  evaluate = commands.add_parser(
      "evaluate", help="print test metrics of a workdir as JSON",
      epilog="Override how it evaluates (not what was trained), for this call only, with "
      "--config.evaluation.KEY=VALUE, --config.eval_batch_size=N or --config.sampling.KEY="
      "VALUE, e.g. --config.evaluation.iwae_k=1000.")
  evaluate.add_argument("--workdir", required=True)
  features = commands.add_parser(
      "train-features", help="train the in-domain feature network for FID/KID/precision-recall")
  features.add_argument("--dataset", default="fashion_mnist")
  features.add_argument("--steps", type=int, default=1800)  # 91.3% test accuracy, ~5 CPU min.
  features.add_argument("--batch-size", type=int, default=128)
  features.add_argument("--seed", type=int, default=0)
  features.add_argument("--data-dir", default=None, help="TFDS data_dir")
  features.add_argument("--out-dir", default=None, help=_FEATURES_ROOT_HELP)
  inception = commands.add_parser(
      "import-inception", help="import the FID Inception weights (a local pytorch-fid "
      ".pth or .npz file) as feature network for RGB datasets")
  inception.add_argument("--weights", required=True,
                         help="e.g. pt_inception-2015-12-05-6726825d.pth (torch needed) or .npz")
  inception.add_argument("--name", default="inception_v3")
  inception.add_argument("--out-dir", default=None, help=_FEATURES_ROOT_HELP)
  prep = commands.add_parser(
      "prepare-data", help="decode, crop and resize a dataset once into ArrayRecord shards "
      "that --config.data.name=prepared --config.data.prepared_dir=DIR streams from")
  source = prep.add_mutually_exclusive_group(required=True)
  source.add_argument("--folder", help="ROOT/<split>/<label>/*.png|jpg|jpeg")
  source.add_argument("--tfds", help="a TFDS image dataset name, e.g. fashion_mnist")
  prep.add_argument("--out", required=True, help="the prepared dataset's directory")
  prep.add_argument("--data-dir", default=None, help="TFDS data_dir (with --tfds)")
  prep.add_argument("--image-size", type=int, default=None,
                    help="centre-crop to a square and resize to S x S (default: as stored)")
  prep.add_argument("--channels", type=int, default=None, choices=(1, 3),
                    help="1 (grey) or 3 (RGB); default: RGB for folders, TFDS's own")
  prep.add_argument("--encoding", default="png", choices=("png", "raw"),
                    help="png (smaller) or raw uint8 (no decoding when read)")
  prep.add_argument("--shard-size", type=int, default=10_000, help="records per shard")
  prep.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
  prep.add_argument("--exclude", default=None,
                    help="a file of record names to leave out (`jaxgen audit-data` writes one)")
  audit = commands.add_parser(
      "audit-data", help="find corrupt, duplicate (across splits too), odd-format and "
      "off-class images; write a JSON report and an exclusion list for data.exclude",
      epilog="With --config, --config.data.KEY=VALUE picks the dataset as training would.")
  audited = audit.add_mutually_exclusive_group(required=True)
  audited.add_argument("--folder", help="ROOT/<split>/<label>/*.png|jpg|jpeg")
  audited.add_argument("--config", help="experiments/NAME.py[:variant]: audit its data")
  audit.add_argument("--out", default="audit.json", help="the JSON report (default audit.json)")
  audit.add_argument("--exclude-out", default=None,
                     help="the exclusion list (default: OUT with .exclude.txt)")
  audit.add_argument("--near-bits", type=int, default=4,
                     help="near-duplicates: at most this many of 64 dHash bits differ")
  audit.add_argument("--exclude-irrelevant", action="store_true",
                     help="also list the off-class candidates in the exclusion list")
  for sub in (train, sample, upscale, evaluate, features, inception, prep, audit):
    sub.add_argument("-v", "--verbose", action="store_true",
                     help=f"also show TensorFlow's and XLA's C++ logs and INFO logs (or set "
                     f"{VERBOSE_ENV}=1)")
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
  _configure_logging(args.verbose or os.environ.get(VERBOSE_ENV, "") not in ("", "0"))
  _check_overrides(args.command, overrides)
  config = (config_lib.load(args.config, overrides)
            if args.command == "train" or getattr(args, "config", None) else None)
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
  if args.command == "prepare-data":
    from jaxgen.data import prepare
    manifest = prepare.prepare(args.out, folder=args.folder, tfds_name=args.tfds,
                               data_dir=args.data_dir, image_size=args.image_size,
                               channels=args.channels, encoding=args.encoding,
                               shard_size=args.shard_size, workers=args.workers,
                               exclude=args.exclude)
    print(json.dumps({split: {k: v for k, v in info.items() if k != "shards"}
                      for split, info in manifest["splits"].items()}, sort_keys=True))
    return 0
  if args.command == "audit-data":
    from jaxgen.data import audit
    report = audit.main_audit(args.folder, config.data if config else None, args.out,
                              args.exclude_out, args.near_bits, args.exclude_irrelevant)
    print(audit.summary(report), file=sys.stderr)
    print(json.dumps({"report": args.out, "exclusion_list": report["exclusion_list"]}))
    return 0
  if args.command == "import-inception":
    from jaxgen.evaluators import inception as inception_lib
    print(json.dumps(inception_lib.import_weights(args.weights, args.name, args.out_dir),
                     sort_keys=True))
    return 0
  config_lib.require_run(args.workdir)  # Before the heavy imports below.
  from jaxgen import conditioning, inference
  config, family, mesh, state = inference.restore(args.workdir)
  config_lib.apply_overrides(config, overrides)  # For this call only; not saved.
  if args.command == "upscale":
    low = inference.read_low_resolution(args.input, config.model.channels)
    high = inference.upscale_uint8(config, family, mesh, state, low, args.seed)
    inference.write_samples(args.out, high)
    print(f"wrote {len(high)} upscaled images {high.shape[1:]} to {args.out}", file=sys.stderr)
  elif args.command == "sample":
    if sum(map(bool, (args.interpolate, args.reconstruct, args.traverse))) > 1:
      raise UserError("--interpolate, --reconstruct and --traverse: pick one")
    attributes = None
    if args.condition is not None:
      if args.prompt is not None:
        raise UserError("--condition and --prompt: pick one")
      if args.interpolate or args.reconstruct or args.traverse:
        raise UserError("--condition applies to plain sampling: drop --interpolate, "
                        "--reconstruct or --traverse")
      attributes = conditioning.read_vectors(args.condition, config)
    if args.prompt is not None:
      if args.label is not None:
        raise UserError("--prompt and --label: pick one")
      from jaxgen import prompts
      args.label, attributes = prompts.condition_of(args.prompt, args.workdir, config)
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
                                       args.label, attributes)
      if attributes is not None and attributes.ndim == 2 and 1 < len(attributes) <= args.num:
        columns = len(attributes)  # One vector per column.
      elif args.label is not None or attributes is not None:
        columns = None
      else:
        columns = conditioning.grid_columns(config)
    inference.write_samples(args.out, samples, columns or None)
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(config.sampling.items()))
    print(f"wrote {len(samples)} samples {samples.shape[1:]} to {args.out}"
          + (f" (sampling: {knobs})" if knobs else ""), file=sys.stderr)
  else:
    print(json.dumps(inference.evaluate(config, family, mesh, state), sort_keys=True))
  return 0


def _check_overrides(command: str, overrides: dict[str, str]) -> None:
  """A UserError for a --config.* key `command` does not take (`train` takes any)."""
  if command in ("train", "audit-data") or not overrides:
    return
  allowed = _CALL_OVERRIDES.get(command)
  if allowed is None:
    raise UserError("--config.* overrides apply to `jaxgen train`, `sample`, `upscale` and "
                    f"`evaluate` only, got {sorted(overrides)}")
  misplaced = sorted(k for k in overrides if not k.startswith(allowed))
  if misplaced:
    names = [f"--config.{a}*" if a.endswith(".") else f"--config.{a}" for a in allowed]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise UserError(f"`jaxgen {command}` takes {listed} only, got {misplaced}: the rest of a "
                    "run's config is what it was trained with")


def _configure_logging(verbose: bool) -> None:
  """Keeps stderr to jaxgen's own lines and warnings unless `verbose`; runs before any import
  of TensorFlow or JAX, whose C++ logging reads its level once, when its library loads."""
  if not verbose:
    # TensorFlow and XLA (in jaxlib too) log through TSL, which drops lines below this level:
    # 2 hides INFO and WARNING (TensorFlow's CPU-instruction and oneDNN notices, TF-TRT's and
    # CUDA's start-up chatter, and the absl::InitializeLog banner they trigger), keeps errors.
    # An explicit TF_CPP_MIN_LOG_LEVEL wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from absl import logging
  # Orbax and TFDS log routinely at INFO; warnings (jaxgen's own among them) stay visible.
  logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
  # Orbax's async saves run on asyncio, which logs a failed write's traceback on its own.
  import logging as std_logging
  std_logging.getLogger("asyncio").setLevel(std_logging.WARNING if verbose else
                                            std_logging.CRITICAL)
  absl_logger = logging.get_absl_logger()
  if verbose:
    absl_logger.removeFilter(_not_orbax)
  elif _not_orbax not in absl_logger.filters:
    absl_logger.addFilter(_not_orbax)


def _not_orbax(record) -> bool:
  """Drops orbax's log records: a failed save makes its background threads log tracebacks,
  while the failure also reaches jaxgen as an exception, reported as one line
  (`checkpoint.save`). --verbose shows them."""
  return "/orbax/" not in record.pathname.replace(os.sep, "/")


def _setup_runtime(args) -> None:
  import jax
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
