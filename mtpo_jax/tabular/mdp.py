"""The layered contextual MDP of MTPO and its constructors (papers/digest.md A1).

`M = (C, X, Y, H, x_1, rho_c, p)`: a context `c ~ rho` fixes an initial-state distribution over the first layer,
the agent acts for `H` turns in a layered state space `X_1 .. X_{H+1}`, and a symmetric preference compares final
states of the same context. Contexts share the layer sizes and the action set; a context is a leading axis `C` on
every array (the paper drops it from the notation because contexts are independent, A1).

A policy is a tuple of `H` arrays, `pi[h]: [C, S_h, A]`, rows summing to one over the actions. Everything here is
numpy float64; the solvers in the sibling modules run on it under `precision.exact`.

Choices where the paper is silent:
- [inferred] The paper fixes one initial state `x_1`; `init[c]` allows a distribution over the first layer
  (one-hot gives the paper's setting).
- [inferred] Actions with `mu(y|x) = 0` are "not available" at `x`; every state keeps at least one action.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import numpy as np

Array = np.ndarray
Policy = tuple  # tuple of H arrays, pi[h]: [C, S_h, A]


@dataclasses.dataclass(frozen=True)
class LayeredMDP:
  """A layered contextual MDP with a preference over final states (digest A1).

  rho:   [C]                        context distribution rho_c
  init:  [C, S_1]                   initial-state distribution per context
  trans: H x [C, S_h, A, S_{h+1}]   transition kernel p(x_{h+1} | c, x_h, y_h)
  mu:    H x [C, S_h, A]            reference policy mu(y | c, x_h)
  pref:  [C, S_{H+1}, S_{H+1}]      P(x succ x' | c), with P + P^T = 1 and diag = 1/2
  """

  rho: Array
  init: Array
  trans: tuple
  mu: tuple
  pref: Array

  @property
  def horizon(self) -> int:
    return len(self.trans)

  @property
  def num_actions(self) -> int:
    return int(self.mu[0].shape[-1])

  @property
  def num_contexts(self) -> int:
    return int(self.rho.shape[0])

  @property
  def layer_sizes(self) -> tuple[int, ...]:
    """(S_1, ..., S_{H+1})."""
    return (int(self.init.shape[1]),) + tuple(int(t.shape[-1]) for t in self.trans)


jax.tree_util.register_dataclass(
  LayeredMDP, data_fields=["rho", "init", "trans", "mu", "pref"], meta_fields=[]
)


def mu_min(mdp: LayeredMDP) -> float:
  """Smallest non-zero reference probability (the `mu_min` of Thm 4.2, digest A6)."""
  return float(min(m[m > 0].min() for m in mdp.mu))


def q_bar(mdp: LayeredMDP, alpha: float) -> float:
  """`Qbar = max{4 alpha H log(1/mu_min), 1}`, the bound on |Q| used by Thm 4.2 / B.2 (digest A6, C1)."""
  return max(4.0 * alpha * mdp.horizon * np.log(1.0 / mu_min(mdp)), 1.0)


def validate(mdp: LayeredMDP, atol: float = 1e-12) -> None:
  """Raise ValueError unless all distributions are normalised and the preference is symmetric (A1)."""
  checks = {
    "rho": mdp.rho.sum() - 1.0,
    "init": mdp.init.sum(-1) - 1.0,
    "pref symmetry": mdp.pref + np.swapaxes(mdp.pref, -1, -2) - 1.0,
  }
  for h in range(mdp.horizon):
    checks[f"trans[{h}]"] = mdp.trans[h].sum(-1) - 1.0
    checks[f"mu[{h}]"] = mdp.mu[h].sum(-1) - 1.0
  for name, err in checks.items():
    if np.max(np.abs(err)) > atol:
      raise ValueError(f"{name} violates its constraint by {np.max(np.abs(err)):.3g}")
  if (mdp.pref < 0).any() or (mdp.pref > 1).any():
    raise ValueError("preference outside [0, 1]")


def uniform_policy(mdp: LayeredMDP) -> Policy:
  """The uniform policy over each state's available actions (support of mu)."""
  out = []
  for m in mdp.mu:
    mask = (m > 0).astype(np.float64)
    out.append(mask / mask.sum(-1, keepdims=True))
  return tuple(out)


def bradley_terry_preference(reward: Array) -> Array:
  """`P(x succ x') = sigma(r(x) - r(x'))` (digest A1, single-turn background). reward: [..., N] -> [..., N, N]."""
  diff = reward[..., :, None] - reward[..., None, :]
  return 1.0 / (1.0 + np.exp(-diff))


def random_preference(rng: np.random.Generator, num_contexts: int, num_final: int) -> Array:
  """A general (not necessarily transitive) symmetric preference: P[x,x'] ~ U(0,1) for x < x'. -> [C, N, N]."""
  upper = rng.uniform(size=(num_contexts, num_final, num_final))
  upper = np.triu(upper, k=1)
  pref = upper + np.swapaxes(np.triu(1.0 - upper, k=1), -1, -2)
  idx = np.arange(num_final)
  pref[:, idx, idx] = 0.5
  return pref


def _random_policy(rng: np.random.Generator, shape: tuple[int, ...], sparsity: float) -> Array:
  """Dirichlet(1) rows over the last axis; each entry is zeroed with prob `sparsity`, keeping >= 1 action."""
  probs = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
  if sparsity > 0:
    keep = rng.uniform(size=shape) >= sparsity
    keep[..., 0] |= ~keep.any(-1)
    probs = probs * keep
    probs /= probs.sum(-1, keepdims=True)
  return probs


def random_mdp(
  seed: int,
  layer_sizes: tuple[int, ...] = (1, 3, 4),
  num_actions: int = 3,
  num_contexts: int = 2,
  *,
  deterministic: bool = False,
  mu_sparsity: float = 0.0,
  reward: Array | None = None,
) -> LayeredMDP:
  """A random instance: Dirichlet transitions (or one random successor each), Dirichlet mu, random preference.

  layer_sizes: (S_1, ..., S_{H+1}); the first layer of each context starts in state 0 (one-hot init, as the
  paper's single x_1). If `reward: [C, S_{H+1}]` is given the preference is Bradley-Terry in it, otherwise a
  general random symmetric preference (intransitive in general).
  """
  rng = np.random.default_rng(seed)
  horizon = len(layer_sizes) - 1
  trans = []
  for h in range(horizon):
    shape = (num_contexts, layer_sizes[h], num_actions, layer_sizes[h + 1])
    if deterministic:
      nxt = rng.integers(layer_sizes[h + 1], size=shape[:-1])
      trans.append(np.eye(layer_sizes[h + 1])[nxt])
    else:
      trans.append(rng.dirichlet(np.ones(layer_sizes[h + 1]), size=shape[:-1]))
  mu = tuple(
    _random_policy(rng, (num_contexts, layer_sizes[h], num_actions), mu_sparsity) for h in range(horizon)
  )
  init = np.zeros((num_contexts, layer_sizes[0]))
  init[:, 0] = 1.0
  rho = rng.dirichlet(np.ones(num_contexts))
  if reward is None:
    pref = random_preference(rng, num_contexts, layer_sizes[-1])
  else:
    pref = bradley_terry_preference(np.broadcast_to(reward, (num_contexts, layer_sizes[-1])))
  mdp = LayeredMDP(rho=rho, init=init, trans=tuple(trans), mu=mu, pref=pref)
  validate(mdp)
  return mdp


def tree_states(num_actions: int, length: int) -> list[tuple[int, ...]]:
  """All action sequences of `length` in lexicographic order: the state index order used by `tree_mdp`."""
  return list(itertools.product(range(num_actions), repeat=length))


def tree_mdp(token_policy: tuple, pref: Array, rho: Array | None = None) -> LayeredMDP:
  """The null-environment MDP `x_{h+1} = x_h ++ y_h` (digest A1, Remark 3.3): states are prefixes.

  token_policy: H x [C, A^(h-1), A], the reference policy on each prefix (prefixes in `tree_states` order).
  pref: [C, A^H, A^H] over complete sequences. With H = 1 this is a contextual bandit.
  """
  horizon = len(token_policy)
  num_contexts, _, num_actions = token_policy[0].shape
  trans = []
  for h in range(horizon):
    n = num_actions**h
    t = np.zeros((num_contexts, n, num_actions, n * num_actions))
    for s in range(n):
      for a in range(num_actions):
        t[:, s, a, s * num_actions + a] = 1.0
    trans.append(t)
  init = np.ones((num_contexts, 1))
  rho = np.full(num_contexts, 1.0 / num_contexts) if rho is None else np.asarray(rho, np.float64)
  mdp = LayeredMDP(rho=rho, init=init, trans=tuple(trans), mu=tuple(token_policy), pref=np.asarray(pref))
  validate(mdp)
  return mdp


def bandit(mu: Array, pref: Array) -> LayeredMDP:
  """A contextual bandit (H = 1, digest A1): mu: [C, A], pref: [C, A, A] over actions."""
  return tree_mdp((mu[:, None, :],), pref)


def index_policy(stacked: Policy, t: int) -> Policy:
  """Iterate `t` of a stacked policy (leading axis T)."""
  return tuple(np.asarray(p[t]) for p in stacked)
