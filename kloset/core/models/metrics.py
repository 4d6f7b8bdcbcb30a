"""Classification metrics for the attribute heads: accuracy, macro F1, per-class figures, confusion matrices."""

from collections.abc import Sequence

import numpy as np


def confusion(truth: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def report(truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro F1 over the classes that occur in the truth, and precision/recall/F1/support per class."""
    matrix = confusion(truth, predicted, len(labels))
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    hits = np.diag(matrix)
    per_class = {}
    f1s = []
    for i, label in enumerate(labels):
        if support[i] == 0 and predicted_count[i] == 0:
            continue
        precision = hits[i] / predicted_count[i] if predicted_count[i] else 0.0
        recall = hits[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(support[i]),
        }
        if support[i]:
            f1s.append(f1)
    total = int(support.sum())
    return {
        "n": total,
        "accuracy": round(float(hits.sum() / total), 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "per_class": per_class,
    }
