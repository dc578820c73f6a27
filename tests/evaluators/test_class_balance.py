"""Class shares of samples against the data's: the counts, the worst class, the distance."""

import numpy as np

from jaxgen.evaluators import class_balance


def test_shares_the_most_under_represented_class_and_total_variation():
  data_labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])  # Shares 1/4, 1/4, 1/2.
  counter = class_balance.ClassCounter(data_labels, 3)
  logits = np.eye(3)[[0, 0, 0, 1, 2, 2, 1, 1]]  # Predicted 0, 0, 0, 1, 2, 2, 1, (1 masked).
  counter.add(logits[:4], np.ones(4))
  counter.add(logits[4:], np.array([1, 1, 1, 0]))
  metrics = dict(counter.metrics("eval/classes/"))
  np.testing.assert_allclose([metrics[f"eval/classes/sample_share/{k}"] for k in range(3)],
                             [3 / 7, 2 / 7, 2 / 7])
  np.testing.assert_allclose([metrics[f"eval/classes/data_share/{k}"] for k in range(3)],
                             [0.25, 0.25, 0.5])
  assert metrics["eval/classes/most_under_represented"] == 2
  np.testing.assert_allclose(metrics["eval/classes/most_under_represented_ratio"], 4 / 7)
  np.testing.assert_allclose(metrics["eval/classes/total_variation"],
                             0.5 * (abs(3 / 7 - 0.25) + abs(2 / 7 - 0.25) + abs(2 / 7 - 0.5)))


def test_a_class_absent_from_the_data_is_never_the_worst():
  counter = class_balance.ClassCounter(np.array([0, 1]), 3)
  counter.add(np.eye(3)[[0, 0, 2]], np.ones(3))
  metrics = dict(counter.metrics(""))
  assert metrics["most_under_represented"] == 1 and metrics["most_under_represented_ratio"] == 0
