"""Bias in samples: the share of each class the feature network's classifier predicts among
a model's samples, against each class's share of the real split.

A model that under-produces a class (mode dropping, a skewed conditional prior) can keep a
decent FID; these numbers name the class. What `benchmarks/gan_classes.py` measured by hand,
reported by every `jaxgen evaluate` whose feature network is a classifier over the data's
classes.
"""

import numpy as np


class ClassCounter:
  """Predicted-class counts of the samples, against `data_labels`' class shares."""

  def __init__(self, data_labels: np.ndarray, num_classes: int):
    self.num_classes = num_classes
    self.data_share = np.bincount(data_labels, minlength=num_classes) / max(len(data_labels), 1)
    self.counts = np.zeros(num_classes, np.int64)

  def add(self, logits, mask) -> None:
    predicted = np.asarray(logits).argmax(-1)[np.asarray(mask) > 0]
    self.counts += np.bincount(predicted, minlength=self.num_classes)

  def metrics(self, prefix: str) -> list[tuple[str, object]]:
    """Per class the sample and data shares; the most under-represented class (the lowest
    ratio of sample share to data share) with that ratio; and the total variation distance
    between the two distributions (0: the same class mix, 1: disjoint)."""
    sample_share = self.counts / max(self.counts.sum(), 1)
    present = self.data_share > 0
    ratio = np.where(present, sample_share / np.where(present, self.data_share, 1), np.inf)
    worst = int(np.argmin(ratio))
    out = [(f"{prefix}sample_share/{k}", float(sample_share[k])) for k in range(self.num_classes)]
    out += [(f"{prefix}data_share/{k}", float(self.data_share[k]))
            for k in range(self.num_classes)]
    return out + [(f"{prefix}most_under_represented", worst),
                  (f"{prefix}most_under_represented_ratio", float(ratio[worst])),
                  (f"{prefix}total_variation",
                   float(0.5 * np.abs(sample_share - self.data_share).sum()))]
