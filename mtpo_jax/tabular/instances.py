"""Hand-written instances for the demonstrations C6 (intransitive preferences) and C8 (myopic turn judge), and the
teaching-strategy game: the tabular twin of the intransitive Education Dialogue experiment (docs/intransitive.md).

Both are small, deterministic-by-construction and documented state by state so a reader can check them by hand.
"""

from __future__ import annotations

import numpy as np

from mtpo_jax.tabular.mdp import LayeredMDP, bradley_terry_preference, validate

ROCK, PAPER, SCISSORS = 0, 1, 2


def cyclic_game(win: float = 0.9, mu_move: tuple[float, float, float] = (0.6, 0.25, 0.15)) -> LayeredMDP:
  """Two-turn rock-paper-scissors with a noisy user (C6): preferences over final states are intransitive.

  Layer 1: one state. Actions 0/1/2 are openings; the user's mood (layer 2: 0 = cooperative, 1 = contrary)
  follows with probabilities (0.8, 0.2), (0.5, 0.5), (0.2, 0.8).
  Layer 2: actions are moves R/P/S; a cooperative user ends on the chosen move w.p. 0.9 (0.05 each other), a
  contrary one w.p. 0.5 (0.25 each other).
  Final states R, P, S with P(R succ S) = P(S succ P) = P(P succ R) = `win`.
  mu: uniform openings; moves drawn from `mu_move` (skewed, so BT data from mu is dominated by R).
  """
  mood = np.array([[0.8, 0.2], [0.5, 0.5], [0.2, 0.8]])
  trans1 = mood[None, None]  # [C=1, S_1=1, A=3, S_2=2]
  follow = {0: 0.9, 1: 0.5}
  trans2 = np.zeros((1, 2, 3, 3))
  for m, p_follow in follow.items():
    for a in range(3):
      trans2[0, m, a] = (1.0 - p_follow) / 2
      trans2[0, m, a, a] = p_follow
  pref = np.full((1, 3, 3), 0.5)
  for winner, loser in [(ROCK, SCISSORS), (SCISSORS, PAPER), (PAPER, ROCK)]:
    pref[0, winner, loser] = win
    pref[0, loser, winner] = 1.0 - win
  mdp = LayeredMDP(
    rho=np.ones(1),
    init=np.ones((1, 1)),
    trans=(trans1, trans2),
    mu=(np.full((1, 1, 3), 1.0 / 3), np.broadcast_to(np.asarray(mu_move), (1, 2, 3)).copy()),
    pref=pref,
  )
  validate(mdp)
  return mdp


# Myopic-trap state and action names (C8).
LOW_PRICE, HIGH_PRICE = 0, 1  # actions at the opening state
AFTER_LOW, AFTER_HIGH = 0, 1  # layer-2 states
SALE_LOW, SALE_HIGH, NO_SALE = 0, 1, 2  # final states
SELLER_REWARD = np.array([1.0, 2.0, 0.0])  # conversation-level outcome value, BT preference over finals


def seller_game() -> tuple[LayeredMDP, tuple]:
  """The paper's seller example (Sec. 3, digest A1 "why trajectory-level feedback") as a 2-turn MDP (C8).

  Opening: LOW_PRICE -> AFTER_LOW, HIGH_PRICE -> AFTER_HIGH (deterministic); mu uniform.
  AFTER_LOW:  action 0 "close"  -> sale_low 0.9 / no sale 0.1;  action 1 "upsell" -> 0.5 / 0.5;  mu uniform.
  AFTER_HIGH: action 0 "hold"   -> sale_high 0.2 / no sale 0.8; action 1 "justify value" -> 0.9 / 0.1;
        mu = (0.9, 0.1): the data policy rarely justifies the price.
  Conversation-level preference: Bradley-Terry in SELLER_REWARD (sale_high > sale_low > no sale).

  Returns (mdp, myopic_turn_pref), the latter H x [1, S_h, 2, 2]: a turn judge that likes the low price at the
  opening (P(low succ high) = 0.8) and judges the second turn sensibly (prefers close, and justify).
  """
  trans1 = np.eye(2)[None, None]  # [1, 1, 2, 2]
  trans2 = np.zeros((1, 2, 2, 3))
  trans2[0, AFTER_LOW, 0] = [0.9, 0.0, 0.1]
  trans2[0, AFTER_LOW, 1] = [0.5, 0.0, 0.5]
  trans2[0, AFTER_HIGH, 0] = [0.0, 0.2, 0.8]
  trans2[0, AFTER_HIGH, 1] = [0.0, 0.9, 0.1]
  mu2 = np.array([[[0.5, 0.5], [0.9, 0.1]]])
  mdp = LayeredMDP(
    rho=np.ones(1),
    init=np.ones((1, 1)),
    trans=(trans1, trans2),
    mu=(np.full((1, 1, 2), 0.5), mu2),
    pref=bradley_terry_preference(SELLER_REWARD[None]),
  )
  validate(mdp)
  opening = np.array([[0.5, 0.8], [0.2, 0.5]])  # P(row succ col): the low price "looks" better
  second = np.array([[[0.5, 0.7], [0.3, 0.5]], [[0.5, 0.3], [0.7, 0.5]]])  # close at AFTER_LOW, justify at HIGH
  return mdp, (opening[None, None], second[None])


# Teaching-strategy game (tabular twin of docs/intransitive.md).
ASK, TEACH = 0, 1  # opening actions
ASKED, TEACHING = 0, 1  # layer-2 states
DISCOVER = 0  # final state of asking then adapting; final state 1 + k is "teach style k" for every turn


def strategy_game(pref: np.ndarray, mu_ask: float, mu_styles: np.ndarray) -> LayeredMDP:
  """The canonical teaching strategies of envs/education/scripted_teacher.py (CANONICAL: discover, then one
  strategy per style) as a two-turn game whose final-state preference is `pref`.

  pref:      [1 + K, 1 + K] P(strategy i's conversation > strategy j's) on the same context, averaged over
             contexts (a judge's policy-level matrix: envs/education/strategy_game.py), index 0 = discover.
  Layer 1: one state; action ASK (mu_ask) -> ASKED, action TEACH (1 - mu_ask) -> TEACHING; the other K - 2
           actions are unavailable (mu = 0), and so is ASK when mu_ask = 0 (a reference policy that never asks:
           every policy regularised towards it keeps to the styles).
  Layer 2: ASKED has one available action (teach the answered style) -> DISCOVER; TEACHING has K actions,
           style k -> final state 1 + k, with mu = mu_styles [K].
  The student's hidden preference is averaged inside `pref`, so transitions are deterministic.
  """
  pref = np.asarray(pref, np.float64)
  mu_styles = np.asarray(mu_styles, np.float64)
  k = mu_styles.shape[0]
  if pref.shape != (1 + k, 1 + k):
    raise ValueError(f"pref must be [{1 + k}, {1 + k}] (discover + {k} styles), got {pref.shape}")
  if not 0 <= mu_ask < 1 or k < 2:
    raise ValueError(f"need 0 <= mu_ask < 1 and at least two styles, got mu_ask={mu_ask}, {k} styles")
  trans1 = np.zeros((1, 1, k, 2))
  trans1[0, 0, ASK, ASKED] = trans1[0, 0, TEACH, TEACHING] = 1.0
  trans1[0, 0, 2:, TEACHING] = 1.0  # unavailable actions still need a valid row
  trans2 = np.zeros((1, 2, k, 1 + k))
  trans2[0, ASKED, :, DISCOVER] = 1.0
  trans2[0, TEACHING] = np.eye(k, 1 + k, 1)
  mu1 = np.zeros((1, 1, k))
  mu1[0, 0, ASK], mu1[0, 0, TEACH] = mu_ask, 1.0 - mu_ask
  mu2 = np.zeros((1, 2, k))
  mu2[0, ASKED, 0] = 1.0
  mu2[0, TEACHING] = mu_styles / mu_styles.sum()
  mdp = LayeredMDP(rho=np.ones(1), init=np.ones((1, 1)), trans=(trans1, trans2), mu=(mu1, mu2), pref=pref[None])
  validate(mdp)
  return mdp
