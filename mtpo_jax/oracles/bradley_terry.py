"""A judge from an explicit reward: Bradley-Terry over the two conversations' rewards (papers/digest.md A11).

    P(a > b) = sigmoid((r(a) - r(b)) / scale)

The paper writes sigma(r(tau) - r(tau')) with no scaling of the price [NOT FOUND in the paper]; `scale` (default
1.0, the paper's form) puts rewards on a sensible logit scale, e.g. scale=1000 for prices in dollars. The judge is
antisymmetric: sigmoid(x) + sigmoid(-x) = 1.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mtpo_jax.envs.negotiation.reward import sale_price
from mtpo_jax.oracles.base import check_same_contexts
from mtpo_jax.types import Conversation


def sigmoid(x: np.ndarray) -> np.ndarray:
  """Numerically stable logistic function, written through tanh so sigmoid(x) + sigmoid(-x) == 1 exactly."""
  return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


class BradleyTerryRewardJudge:
  """`Judge` over any reward function `reward_fn(conversation) -> float`."""

  def __init__(self, reward_fn: Callable[[Conversation], float], scale: float = 1.0):
    if not scale > 0:
      raise ValueError(f"scale must be positive, got {scale}")
    self.reward_fn, self.scale = reward_fn, float(scale)

  def rewards(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 rewards."""
    return np.array([float(self.reward_fn(c)) for c in conversations], dtype=np.float64)

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i])."""
    check_same_contexts(a, b)
    return sigmoid((self.rewards(a) - self.rewards(b)) / self.scale)


def sale_reward_judge(scale: float = 1000.0) -> BradleyTerryRewardJudge:
  """The negotiation oracle as a judge (digest A11): `rewards` = sale price / `scale` (0 without a sale) and
  `preference` = sigmoid(r(a) - r(b)) over those. The paper does not scale the price [NOT FOUND]; $1,000 keeps
  rewards near 10-30, a sane range for the critic's regression and for the Bradley-Terry logit."""
  if not scale > 0:
    raise ValueError(f"scale must be positive, got {scale}")
  return BradleyTerryRewardJudge(lambda c: sale_price(c) / scale)
