"""The judge interface: P(conversation A is better than conversation B) for a batch of pairs on shared contexts.

Every judge is antisymmetric, P(a, b) + P(b, a) = 1: order-sensitive judges query both orders and average
(`symmetrize`).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from mtpo_jax.types import Conversation


class Judge(Protocol):
  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 in [0, 1]: probability that a[i] is preferred to b[i] (same context)."""
    ...


def symmetrize(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
  """Antisymmetric preference from an order-sensitive judge's two answers: (P(a,b) + 1 - P(b,a)) / 2."""
  return 0.5 * (np.asarray(p_ab, np.float64) + 1.0 - np.asarray(p_ba, np.float64))


def check_same_contexts(a: Sequence[Conversation], b: Sequence[Conversation]) -> None:
  if len(a) != len(b):
    raise ValueError(f"judge got {len(a)} and {len(b)} conversations; pairs must align")
  for i, (x, y) in enumerate(zip(a, b)):
    if x.context.context_id != y.context.context_id:
      raise ValueError(f"pair {i} compares different contexts ({x.context.context_id!r} vs {y.context.context_id!r})")
