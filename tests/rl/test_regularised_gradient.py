"""The actor's surrogate follows the exact gradient of the paper's regularised objective (digest A2, A7).

A toy small enough to enumerate: two agent turns of two tokens (vocabulary 3), a stochastic environment reply
s in {0, 1} between them, tabular token logits for every prefix, a fixed reference mu and a terminal reward R.
The exact objective, by enumeration of every trajectory and every turn's whole sequence distribution:

    J(theta) = E_pi[ R(x_{H+1}) - alpha * sum_h KL(pi || mu)[x_h] ],   KL[x_h] = sum_{y in V^2} pi(y|x_h) log(pi/mu)

and jax.grad gives its gradient. The library's surrogate (rewards - alpha * path KL through
`advantages.regularised_rewards`, GAE with lambda = 1 and no critic, `losses.mtpo_policy_loss` with its own
alpha * KL term), weighted by each trajectory's probability, must have gradient -grad J / T. The loss-only
estimator (KL outside the rewards) and a flipped sign must not.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax.rl import advantages as adv
from mtpo_jax.rl import kl, losses

V, ALPHA = 3, 0.7
TURN1 = [(), *[(a,) for a in range(V)]]
TURN2 = [(a, b, s) + rest for a in range(V) for b in range(V) for s in range(2) for rest in [(), *[(c,) for c in range(V)]]]
PREFIXES = {p: i for i, p in enumerate(TURN1 + TURN2)}

rs = np.random.RandomState(0)
THETA0 = jnp.asarray(rs.randn(len(PREFIXES), V), jnp.float32)
MU = jnp.asarray(rs.randn(len(PREFIXES), V), jnp.float32)
REPLY = rs.uniform(0.1, 0.9, (V, V))          # P(s = 1 | first turn)
REWARD = rs.uniform(0.0, 1.0, (V, V, 2, V, V))  # terminal reward R(y1, y2, s, y3, y4)


TRAJ = np.array(list(itertools.product(range(V), range(V), range(2), range(V), range(V))))  # [N, 5]
STATES = [(), *[(a, b, s) for a in range(V) for b in range(V) for s in range(2)]]


def _turn_index(state, y):
  """Prefix rows [2] of the two tokens of turn y at `state`."""
  return [PREFIXES[state], PREFIXES[state + (y[0],)]]


# [N, T=2, L=2]: the logits row of every token of every trajectory; [N, T, L] tokens.
ROWS = np.array([[_turn_index((), (a, b)), _turn_index((a, b, s), (c, d))] for a, b, s, c, d in TRAJ])
TOKENS = jnp.asarray(TRAJ[:, [0, 1, 3, 4]].reshape(-1, 2, 2))
P_REPLY = jnp.asarray(np.where(TRAJ[:, 2] == 1, REPLY[TRAJ[:, 0], TRAJ[:, 1]], 1 - REPLY[TRAJ[:, 0], TRAJ[:, 1]]))
R = jnp.asarray(REWARD[tuple(TRAJ.T)])
# Exact sequence KL at every state: [S, V^2, 2] rows of each possible turn.
TURNS = list(itertools.product(range(V), repeat=2))
STATE_ROWS = np.array([[_turn_index(st, y) for y in TURNS] for st in STATES])
STATE_TOKENS = jnp.asarray(np.array(TURNS))


def _exact_objective(theta):
  lp = jax.nn.log_softmax(theta[STATE_ROWS], -1)      # [S, V^2, 2, V]
  lq = jax.nn.log_softmax(MU[STATE_ROWS], -1)
  seq_lp = jnp.take_along_axis(lp, STATE_TOKENS[None, :, :, None], -1)[..., 0].sum(-1)  # [S, V^2]
  seq_lq = jnp.take_along_axis(lq, STATE_TOKENS[None, :, :, None], -1)[..., 0].sum(-1)
  state_kl = (jnp.exp(seq_lp) * (seq_lp - seq_lq)).sum(-1)  # [S]
  logp = jnp.take_along_axis(jax.nn.log_softmax(theta[ROWS], -1), TOKENS[..., None], -1)[..., 0].sum(-1)  # [N, T]
  p1 = jnp.exp(logp[:, 0])
  p = p1 * P_REPLY * jnp.exp(logp[:, 1])
  second = np.array([STATES.index((a, b, s)) for a, b, s, _, _ in TRAJ])
  # each turn-2 state appears V^2 times across trajectories (its continuations): weight its KL once
  kl2 = (p1 * P_REPLY * state_kl[second]).sum() / V ** 2
  return (p * R).sum() - ALPHA * state_kl[0] - ALPHA * kl2


def _surrogate(theta, kl_sign=1.0, kl_in_reward=True):
  """E_traj[ per-trajectory actor loss ] with the trajectory probabilities held constant (score-function form)."""
  logits, ref = theta[ROWS], MU[ROWS]   # [N, T, L, V]

  def one(lg, rf, tok, r):
    mask = jnp.ones((2, 2))
    turn_logp = (kl.token_logprobs(lg, tok) * mask).sum(-1)[None]   # [1, T]
    turn_kl = kl.sequence_kl(lg, rf, mask)[None]                   # [1, T], along the sampled tokens
    rewards, tmask = jnp.stack([0.0, r])[None], jnp.ones((1, 2))
    if kl_in_reward:
      rewards = adv.regularised_rewards(rewards, kl_sign * turn_kl, tmask, ALPHA)
    advantages, _ = adv.turn_gae(rewards, jnp.zeros((1, 2)), tmask, gamma=1.0, lam=1.0)
    return losses.mtpo_policy_loss(turn_logp, advantages, turn_kl, tmask, ALPHA), turn_logp.sum()

  loss, logp = jax.vmap(one)(logits, ref, TOKENS, R)
  prob = jax.lax.stop_gradient(jnp.exp(logp) * P_REPLY)
  return (prob * loss).sum()


def _grads():
  exact = jax.grad(_exact_objective)(THETA0)
  return exact, jax.jit(jax.grad(_surrogate), static_argnums=(1, 2))


def test_regularised_rewards_by_hand():
  r = jnp.array([[0.0, 0.0, 0.8], [0.3, 0.0, 0.0]])
  turn_kl = jnp.array([[0.5, 1.0, 2.0], [4.0, 9.0, 9.0]])
  mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(adv.regularised_rewards(r, turn_kl, mask, 0.1),
                             [[-0.05, -0.1, 0.6], [-0.1, 0.0, 0.0]], rtol=1e-6)


def test_surrogate_gradient_is_the_exact_regularised_gradient():
  exact, surrogate = _grads()
  g = surrogate(THETA0, 1.0, True)
  # T = 2 turns and a mean over them: the surrogate's gradient is -grad J / 2.
  np.testing.assert_allclose(np.asarray(-2.0 * g), np.asarray(exact), atol=2e-5)


def test_loss_only_and_flipped_sign_estimators_are_biased():
  exact, surrogate = _grads()
  scale = float(jnp.abs(exact).max())
  for sign, in_reward in ((1.0, False), (-1.0, True)):
    err = float(jnp.abs(-2.0 * surrogate(THETA0, sign, in_reward) - exact).max())
    assert err > 0.05 * scale, (sign, in_reward, err, scale)
