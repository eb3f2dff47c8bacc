"""Held-out evaluation of the learned judges: accuracy on decisive pairs, expected calibration error and the
reliability table, loss; for the joint preference model also the symmetrised numbers and the antisymmetry gap.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from mtpo_jax import partitioning
from mtpo_jax.oracles import learned
from mtpo_jax.rl import scorer_steps as steps


# CALIBRATION

def calibration(probability: np.ndarray, label: np.ndarray, num_bins: int = 10) -> dict[str, Any]:
  """Expected calibration error and the reliability table of predicted P(a > b) against the judge's.

  Bins [k/n, (k+1)/n) (the last one closed). With soft labels the observed frequency of a bin is the mean judge
  probability in it: ECE = sum_b (n_b / N) |mean p_b - mean label_b|.
  """
  p, y = np.asarray(probability, np.float64), np.asarray(label, np.float64)
  index = np.clip(np.floor(p * num_bins).astype(int), 0, num_bins - 1)
  table, ece = [], 0.0
  for k in range(num_bins):
    in_bin = index == k
    n = int(in_bin.sum())
    row = {"low": k / num_bins, "high": (k + 1) / num_bins, "count": n}
    if n:
      row.update(mean_predicted=float(p[in_bin].mean()), mean_label=float(y[in_bin].mean()))
      row["gap"] = abs(row["mean_predicted"] - row["mean_label"])
      ece += n / len(p) * row["gap"]
    table.append(row)
  return {"ece": float(ece), "reliability": table}


def accuracy(probability: np.ndarray, label: np.ndarray) -> float:
  """`scorer_steps.preference_accuracy` in numpy: agreement on decisive pairs, a prediction of 1/2 half right."""
  decisive = np.abs(label - 0.5) > steps.TIE_TOLERANCE
  right = np.where(probability == 0.5, 0.5, (probability > 0.5) == (label > 0.5))
  return float(right[decisive].mean()) if decisive.any() else 0.0


def format_table(table: Sequence[dict]) -> str:
  lines = ["  bin          count  predicted  judge"]
  for r in table:
    pred = f"{r['mean_predicted']:.3f}" if r["count"] else "-"
    judge = f"{r['mean_label']:.3f}" if r["count"] else "-"
    lines.append(f"  [{r['low']:.1f}, {r['high']:.1f})  {r['count']:6d}  {pred:>9}  {judge:>5}")
  return "\n".join(lines)


# EVALUATION

def evaluate(eval_fn: Callable, params: Any, evals: Any, partitioner: partitioning.Partitioner,
             kind: str) -> dict[str, Any]:
  """Held-out loss, accuracy on decisive pairs, ECE and reliability table; for the preference model also the
  same after symmetrising both orders (what LearnedPreferenceJudge returns) and the antisymmetry gap."""
  batches = list(evals.in_order())
  outs = [jax.device_get(eval_fn(params, partitioner.put_batch(b))) for b in batches]
  real = [b["weight"] > 0 for b in batches]
  weights = np.array([float(o["examples"]) for o in outs])
  prob = np.concatenate([o["probability"][m] for o, m in zip(outs, real)]).astype(np.float64)
  label = evals.arrays["label"].astype(np.float64)
  report = {"kind": kind, "examples": evals.size,
            "decisive": int((np.abs(label - 0.5) > steps.TIE_TOLERANCE).sum()),
            "loss": float(np.dot([float(o["loss"]) for o in outs], weights) / weights.sum()),
            "accuracy": accuracy(prob, label), "mean_abs_error": float(np.abs(prob - label).mean()),
            **calibration(prob, label)}
  if kind == "reward":
    r = np.concatenate([np.concatenate([o["reward_a"][m], o["reward_b"][m]]) for o, m in zip(outs, real)])
    report.update(reward_mean=float(r.mean()), reward_std=float(r.std()))
  elif kind == "preference":
    p_ab, p_ba = prob[0::2], prob[1::2]
    sym = learned.antisymmetric_preference(p_ab, p_ba)
    report["antisymmetry_gap"] = float(np.abs(p_ab + p_ba - 1.0).mean())
    report["symmetrized"] = {"accuracy": accuracy(sym, label[0::2]), **calibration(sym, label[0::2])}
  return report


def scalars(report: dict[str, Any]) -> dict[str, float]:
  """The report's scalar entries (for the metrics log)."""
  skip = ("examples", "decisive", "step")
  out = {k: float(v) for k, v in report.items() if isinstance(v, (int, float)) and k not in skip}
  for k, v in report.get("symmetrized", {}).items():
    if isinstance(v, float):
      out[f"symmetrized_{k}"] = v
  return out
