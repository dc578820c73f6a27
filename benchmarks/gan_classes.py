"""Which classes a trained GAN produces, per the feature network's classifier.

  python benchmarks/gan_classes.py --workdir runs/cdcgan [--num 10000]

Mode collapse shows as classes missing from the samples' predicted-class histogram. For a
class-conditional model it also samples each class on request and reports how often the
classifier agrees with the requested label. One JSON line; needs the `fashion_mnist`
classifier (`jaxgen train-features --dataset fashion_mnist`, 91.3% test accuracy: that is
the ceiling of the agreement on real images).
"""

import argparse
import json

import jax.numpy as jnp
import numpy as np

from jaxgen import conditioning, inference
from jaxgen.evaluators import features


def _predict(logits_fn, images: np.ndarray) -> np.ndarray:
  out = []
  for start in range(0, len(images), features.EVAL_BATCH_SIZE):
    batch = features.to_model_range(jnp.asarray(images[start:start + features.EVAL_BATCH_SIZE]))
    out.append(np.asarray(logits_fn(batch)).argmax(-1))
  return np.concatenate(out)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num", type=int, default=10_000)
  parser.add_argument("--classifier", default="fashion_mnist")
  args = parser.parse_args(argv)
  logits_fn, info = features.load_classifier(args.classifier)
  config, family, mesh, state = inference.restore(args.workdir)
  samples = inference.sample_uint8(config, family, mesh, state, args.num, seed=1)
  counts = np.bincount(_predict(logits_fn, samples), minlength=info["num_classes"])
  share = counts / counts.sum()
  result = {"workdir": args.workdir, "step": int(state.step), "num_samples": args.num,
            "classifier": args.classifier, "classifier_sha256": info["params_sha256"],
            "predicted_class_share": [round(float(s), 4) for s in share],
            "classes_present_at_1pct": int(np.sum(share >= 0.01)),
            "min_class_share": round(float(share.min()), 4)}
  classes = conditioning.num_classes(config)
  if classes:
    per_class = args.num // classes
    agreement = []
    for label in range(classes):
      images = inference.sample_uint8(config, family, mesh, state, per_class, seed=2 + label,
                                      label=label)
      agreement.append(float(np.mean(_predict(logits_fn, images) == label)))
    result["requested_label_agreement"] = [round(a, 4) for a in agreement]
    result["mean_requested_label_agreement"] = round(float(np.mean(agreement)), 4)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
