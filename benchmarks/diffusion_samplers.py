"""A diffusion run's sample quality against the number of network evaluations (NFE), per sampler.

  python benchmarks/diffusion_samplers.py --workdir runs/edm_cpu \
      [--samplers ddim,heun,dpmpp_2m] [--nfe 10,20,35] [--guidance 1] [--weights ema]
      [--num 2000]

For each sampler and NFE target it draws `--num` samples from the run's `--weights` (the
steps giving that NFE: heun takes (NFE + 1) / 2 steps, the others NFE) and scores them as
`jaxgen evaluate` does (FID/KID/precision/recall in the run's feature network against its
test split), at each classifier-free guidance scale of `--guidance` (a value other than 1
needs a class-conditional run). Fewer samples than 10k bias FID upwards, so compare rows of
one table only. One JSON line per setting, then a markdown table. Only the sample metrics
run: not the test loss and bound, which do not depend on the sampler.
"""

import argparse
import json
import time

from jaxgen import inference, train
from jaxgen.evaluators.sample_quality import SampleQualityEvaluator
from jaxgen.families import diffusion_samplers


def steps_for(sampler: str, nfe: int) -> int:
  return (nfe + 1) // 2 if sampler == "heun" else nfe


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--samplers", default="ddim,heun,dpmpp_2m")
  parser.add_argument("--nfe", default="10,20,35")
  parser.add_argument("--guidance", default="1",
                      help="comma-separated guidance scales (0 unconditional, 1 conditional)")
  parser.add_argument("--weights", default="ema", help="comma-separated: ema, raw")
  parser.add_argument("--num", type=int, default=2000)
  args = parser.parse_args(argv)
  config, family, mesh, state = inference.restore(args.workdir)
  source = train.load_data(config, family, config.data.eval_split)
  rows = []
  settings = [(s, n, float(g), w) for w in args.weights.split(",")
              for s in args.samplers.split(",") for n in map(int, args.nfe.split(","))
              for g in args.guidance.split(",")]
  for sampler, nfe, guidance, weights in settings:
    with config.unlocked():
      config.sampling.sampler, config.sampling.steps = sampler, steps_for(sampler, nfe)
      config.sampling.guidance, config.sampling.weights = guidance, weights
      config.evaluation.num_samples = config.evaluation.max_stored_features = args.num
    start = time.perf_counter()
    metrics = dict(SampleQualityEvaluator(config, family, mesh, source).run(state))
    row = {"sampler": sampler, "steps": config.sampling.steps,
           "nfe": diffusion_samplers.num_evaluations(sampler, config.sampling.steps),
           "guidance": guidance, "weights": weights, "num_samples": args.num,
           "seconds": round(time.perf_counter() - start, 1),
           **{k: metrics[f"eval/{k}"] for k in ("fid", "kid", "precision", "recall")}}
    print(json.dumps(row), flush=True)
    rows.append(row)
  print("| weights | sampler | steps | NFE | guidance | FID | KID | precision | recall | "
        "seconds |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['weights']} | {r['sampler']} | {r['steps']} | {r['nfe']} | {r['guidance']:g} | "
          f"{r['fid']:.2f} | "
          f"{r['kid']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['seconds']} |")


if __name__ == "__main__":
  main()
