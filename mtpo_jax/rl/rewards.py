"""Turn rewards from conversation-level feedback (papers digest A7).

MTPO scores the two conversations of a context against each other: the first gets p = P(first better than
second) on its last agent turn and the second gets 1 - p, a one-sample estimate of P(x_{H+1} > pi_t), the
terminal reward of Q^{pi_t, pi_t}. RLHF and reward-based RL put a scalar reward on the last turn.
"""

from __future__ import annotations

import numpy as np


def terminal_rewards(scores: np.ndarray, turn_mask: np.ndarray) -> np.ndarray:
  """scores [C] -> rewards [C, T], each score on its conversation's last real turn; per-turn scores [C, T] (an
  environment with a reward per turn) are masked to the real turns. turn_mask: [C, T]."""
  scores, turn_mask = np.asarray(scores, np.float32), np.asarray(turn_mask, np.float32)
  if scores.shape == turn_mask.shape:
    return scores * turn_mask
  if scores.shape != turn_mask.shape[:1]:
    raise ValueError(f"rewards must have shape [C] = {turn_mask.shape[:1]} or [C, T] = {turn_mask.shape}, got "
                     f"{scores.shape}")
  rewards = np.zeros(turn_mask.shape, np.float32)
  last = turn_mask.sum(axis=1).astype(int) - 1
  has_turn = last >= 0
  rewards[np.flatnonzero(has_turn), last[has_turn]] = scores[has_turn]
  return rewards


def pair_scores(preferences: np.ndarray, pairs: np.ndarray, num_conversations: int) -> np.ndarray:
  """preferences [P] = P(pairs[k, 0] better than pairs[k, 1]) -> per-conversation scores [C] (p and 1 - p)."""
  pairs = np.asarray(pairs)
  scores = np.full((num_conversations,), np.nan, np.float32)
  scores[pairs[:, 0]] = preferences
  scores[pairs[:, 1]] = 1.0 - np.asarray(preferences)
  if np.isnan(scores).any():
    raise ValueError(f"conversations {np.flatnonzero(np.isnan(scores)).tolist()} are in no pair")
  return scores


def preference_spread(preferences: np.ndarray) -> dict[str, float]:
  """How decisive the judge is: mean |p - 1/2| and the share of saturated answers (p < .02 or > .98).
  A rising saturated share while win rates climb is the classic sign of a policy exploiting its judge."""
  p = np.asarray(preferences, np.float64)
  return {"preference_spread": float(np.mean(np.abs(p - 0.5))),
          "preference_saturated": float(np.mean((p < 0.02) | (p > 0.98)))}
