"""The pairwise win-rate matrix of papers/digest.md A13 (Table 1): M[i][j] = P(method i's conversation is preferred
to method j's on the same context), averaged over held-out contexts, with percentile-bootstrap intervals.

    p_k   = (P(a_k, b_k) + 1 - P(b_k, a_k)) / 2          both orders judged, then symmetrised (oracles/base.py)
    M[i][j] = mean_k p_k,   M[j][i] = 1 - M[i][j],   M[i][i] = 1/2

so M + M^T = 1 holds exactly, even for a judge with a position bias. With several seeds per method (the paper's
3 x 3 seed matrix, digest A13) p_k is averaged over every (seed of i, seed of j) pair before the mean, and
`seed_std` is the standard deviation of the S_i x S_j seed-pair means (the paper's parenthesised std); a method's
score is its per-context score averaged over its seeds. Intervals resample the contexts with
replacement (one set of B resampled index vectors shared by every entry and every score, seeded) and take the
2.5% and 97.5% percentiles of the resampled means. Pure numpy; the judge is any `oracles.base.Judge`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from mtpo_jax.oracles.base import check_same_contexts, symmetrize
from mtpo_jax.types import Conversation


@dataclasses.dataclass(frozen=True)
class WinMatrix:
  """names: M method names (row/column order); matrix, low, high: [M, M] float64 P(row > col), its bootstrap
  interval (diagonal 1/2); n_contexts: K; scores, score_low, score_high: [M] mean ground-truth score per method
  and its interval, or None when the judge has no scalar score; judge: the judge's name; confidence; resamples."""
  names: tuple[str, ...]
  matrix: np.ndarray
  low: np.ndarray
  high: np.ndarray
  n_contexts: int
  scores: np.ndarray | None
  score_low: np.ndarray | None
  score_high: np.ndarray | None
  judge: str
  confidence: float
  resamples: int
  seed_counts: tuple[int, ...] | None = None
  seed_std: np.ndarray | None = None

  def to_json(self) -> dict[str, Any]:
    """Plain lists and numbers (json.dump-able)."""
    as_list = lambda x: None if x is None else np.asarray(x).tolist()
    return {"names": list(self.names), "matrix": as_list(self.matrix), "low": as_list(self.low),
            "high": as_list(self.high), "n_contexts": self.n_contexts, "scores": as_list(self.scores),
            "score_low": as_list(self.score_low), "score_high": as_list(self.score_high), "judge": self.judge,
            "confidence": self.confidence, "resamples": self.resamples,
            "seed_counts": None if self.seed_counts is None else list(self.seed_counts),
            "seed_std": as_list(self.seed_std)}


def symmetric_preferences(judge: Any, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
  """[K] float64 p_k = (P(a_k, b_k) + 1 - P(b_k, a_k)) / 2: the judge asked in both orders, then symmetrised."""
  check_same_contexts(a, b)
  p_ab = np.asarray(judge.preference(list(a), list(b)), np.float64)
  p_ba = np.asarray(judge.preference(list(b), list(a)), np.float64)
  if p_ab.shape != (len(a),) or p_ba.shape != (len(a),):
    raise ValueError(f"judge returned shapes {p_ab.shape} and {p_ba.shape} for {len(a)} pairs")
  return symmetrize(p_ab, p_ba)


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
  """[B, n] int indices: B resamples of n contexts drawn with replacement (numpy Generator seeded by `seed`)."""
  if n < 1 or resamples < 1:
    raise ValueError(f"need n >= 1 and resamples >= 1, got {n}, {resamples}")
  return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_interval(values: np.ndarray, indices: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
  """Percentile interval of the mean of `values` [K] over the resamples `indices` [B, K]."""
  means = np.asarray(values, np.float64)[indices].mean(axis=1)
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(means, [tail, 100.0 - tail])
  return float(low), float(high)


def _oriented(p: np.ndarray) -> tuple[np.ndarray, bool]:
  """p [K] preferences of i over j, flipped to the side whose mean is >= 1/2 (so that 1 - mean is exact)."""
  return (p, False) if p.mean() >= 0.5 else (1.0 - p, True)


def judge_scores(judge: Any, conversations: Sequence[Conversation]) -> np.ndarray | None:
  """[K] float64 ground-truth scores (`judge.score`, else `judge.rewards`), or None if the judge has neither."""
  for name in ("score", "rewards"):
    if hasattr(judge, name):
      return np.asarray(getattr(judge, name)(list(conversations)), np.float64)
  return None


def win_matrix(conversations: Mapping[str, Sequence[Conversation]], judge: Any, *, resamples: int = 1000,
               confidence: float = 0.95, seed: int = 0) -> WinMatrix:
  """The [M, M] win-rate matrix of M methods whose conversations are aligned by context (conversations[name][k]
  all play context k), with bootstrap intervals over the K contexts and each method's mean score."""
  result = grouped_win_matrix({n: [c] for n, c in conversations.items()}, judge, resamples=resamples,
                              confidence=confidence, seed=seed)
  return dataclasses.replace(result, seed_counts=None, seed_std=None)


def grouped_win_matrix(conversations: Mapping[str, Sequence[Sequence[Conversation]]], judge: Any, *,
                       resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> WinMatrix:
  """`win_matrix` for methods with several seeds: conversations[name][s][k] is seed s of the method on context
  k; entries average every seed pair (module docstring)."""
  names = tuple(conversations)
  if len(names) < 1:
    raise ValueError("need at least one method")
  groups = [[list(run) for run in conversations[n]] for n in names]
  if any(len(g) < 1 for g in groups):
    raise ValueError(f"every method needs at least one run; got { {n: len(g) for n, g in zip(names, groups)} }")
  k = len(groups[0][0])
  if k < 1 or any(len(run) != k for g in groups for run in g):
    raise ValueError(f"every run needs the same, non-zero number of conversations; got "
                     f"{ {n: [len(r) for r in g] for n, g in zip(names, groups)} }")
  for g in groups:
    for run in g:
      check_same_contexts(groups[0][0], run)
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  idx = bootstrap_indices(k, resamples, seed)
  m = len(names)
  matrix, low, high = (np.full((m, m), 0.5) for _ in range(3))
  seed_std = np.zeros((m, m))
  # SCORE PAIRS: the upper triangle; the lower one is its exact complement.
  for i in range(m):
    for j in range(i + 1, m):
      per_pair = np.stack([symmetric_preferences(judge, a, b) for a in groups[i] for b in groups[j]])
      seed_std[i, j] = seed_std[j, i] = per_pair.mean(axis=1).std() if len(per_pair) > 1 else 0.0
      p, flipped = _oriented(per_pair.mean(axis=0))
      mean = float(p.mean())
      lo, hi = bootstrap_interval(p, idx, confidence)
      (a, b) = (j, i) if flipped else (i, j)
      matrix[a, b], low[a, b], high[a, b] = mean, lo, hi
      matrix[b, a], low[b, a], high[b, a] = 1.0 - mean, 1.0 - hi, 1.0 - lo
  assert np.all(matrix + matrix.T == 1.0), "win matrix is not complementary"
  # SCORE METHODS: per-context scores averaged over seeds
  per_run = [[judge_scores(judge, run) for run in g] for g in groups]
  scores = score_low = score_high = None
  if all(s is not None for runs in per_run for s in runs):
    per_method = [np.mean(runs, axis=0) for runs in per_run]
    scores = np.array([s.mean() for s in per_method])
    bounds = np.array([bootstrap_interval(s, idx, confidence) for s in per_method])
    score_low, score_high = bounds[:, 0], bounds[:, 1]
  return WinMatrix(names, matrix, low, high, k, scores, score_low, score_high, type(judge).__name__, confidence,
                   resamples, tuple(len(g) for g in groups), seed_std)
