"""The intransitive experiment's readings (docs/intransitive.md): the canonical strategies' policy-level matrix, its
tabular twin's prediction, and the exploitability proxy of trained policies.

    strategy_matrix     P(strategy i > strategy j) averaged over contexts under a judge   [S, S]
    best_order_accuracy the most any Bradley-Terry model reaches on a judge's labels (own_accuracy: the judge's)
    data_policy_rates   how often the SFT data's teacher asks first, and which styles it teaches (the twin's mu)
    twin_prediction     MTPO, MTPO-tau and multi-turn RLHF solved exactly on tabular/instances.strategy_game
    exploitability_proxy  per policy of a win-rate matrix: the best win rate any other row achieves against it
    strategy_profile    where a policy's conversations sit among the strategies: asks first, styles taught
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from mtpo_jax.envs.education import attributes, cues, generator, scripted_teacher
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.tabular import algorithms, baselines, instances, nash, values
from mtpo_jax.tabular import mdp as mdp_lib
from mtpo_jax.types import Context, Conversation

CANONICAL = scripted_teacher.canonical_names()  # discover, then one per style (attributes.STYLES order)


def pairwise_matrix(judge: Any, groups: Sequence[Sequence[Conversation]]) -> np.ndarray:
  """[S, S] P(group i > group j): the mean of judge.preference over the aligned conversations of groups i and j
  (conversation k of every group plays context k); the lower triangle is 1 - the upper, the diagonal 1/2."""
  m = np.full((len(groups), len(groups)), 0.5)
  for i in range(len(groups)):
    for j in range(i + 1, len(groups)):
      m[i, j] = float(np.mean(judge.preference(groups[i], groups[j])))
      m[j, i] = 1.0 - m[i, j]
  return m


def strategy_matrix(judge: Any, contexts: Sequence[Context], *, max_agent_turns: int, seed: int = 0,
                    names: Sequence[str] = tuple(CANONICAL)) -> np.ndarray:
  """[S, S] `pairwise_matrix` of the strategies `names` on `contexts`, every strategy playing the scripted student
  with environment seed `seed`."""
  return pairwise_matrix(judge, [scripted_teacher.play(n, contexts, max_agent_turns=max_agent_turns, seed=seed)
                                 for n in names])


def own_accuracy(p: np.ndarray) -> float:
  """Accuracy of a judge on labels drawn from its own p[i, j] = P(i > j): mean over pairs of max(P, 1 - P)."""
  return float(np.mean([max(p[i, j], p[j, i]) for i, j in itertools.combinations(range(p.shape[0]), 2)]))


def best_order_accuracy(p: np.ndarray) -> float:
  """The highest accuracy any total order of the items reaches on labels drawn from p[i, j] = P(i > j), by
  enumerating the orders (n! of them: for a handful of items). A Bradley-Terry model predicts by the order of its
  rewards, so no BT fit of any reward does better."""
  pairs = list(itertools.combinations(range(p.shape[0]), 2))
  best = 0.0
  for order in itertools.permutations(range(p.shape[0])):
    rank = np.argsort(order)
    best = max(best, float(np.mean([p[i, j] if rank[i] < rank[j] else p[j, i] for i, j in pairs])))
  return best


def data_policy_rates(num_records: int = 2000, seed: int = 0, split: str = "train",
                      horizon: int = 3) -> tuple[float, np.ndarray]:
  """(mu_ask, mu_styles [len(STYLES)]) of the generated SFT data, the twin's reference policy: the share of
  conversations whose teacher asks how the student learns within its first `horizon` turns, and the styles of
  the other conversations' teaching turns in those turns (cues.py reads them; add-one smoothing, so every style
  stays available as in a sampled policy)."""
  asks, counts = 0, np.ones(len(attributes.STYLES))
  for i, record in enumerate(generator.generate(num_records, seed, split)):
    conv = record_to_conversation(record, f"rates-{i}")
    topic = conv.context.visible["topic"]
    turns = [cues.analyze_turn(t.text, topic) for t in conv.turns if t.is_agent][:horizon]
    if any(c.asks_preference for c in turns):
      asks += 1
      continue
    for c in turns:
      if cues.is_teaching(c) and c.style in attributes.STYLES:
        counts[attributes.STYLES.index(c.style)] += 1
  return asks / num_records, counts / counts.sum()


def strategy_profile(conversations: Sequence[Conversation]) -> dict[str, Any]:
  """How a policy plays, read by cues.py from its conversations: `asks_first` (share whose first teacher turn asks
  how the student learns, discover's opening), `asks` (share asking in any turn), `styles` (share of teaching
  turns detected in each style of attributes.STYLES; `none` for turns with no detected style) and
  `topical_turns` (mean teaching turns with >= 2 topic words per conversation)."""
  asks_first = asks = topical = 0
  styles = dict.fromkeys((*attributes.STYLES, "none"), 0)
  for conv in conversations:
    topic = conv.context.visible["topic"]
    turns = [cues.analyze_turn(t.text, topic) for t in conv.turns if t.is_agent]
    asks_first += bool(turns) and turns[0].asks_preference
    asks += any(c.asks_preference for c in turns)
    for c in turns:
      if cues.is_teaching(c):
        styles[c.style if c.style in attributes.STYLES else "none"] += 1
        topical += c.content >= 2
  n, taught = max(1, len(conversations)), max(1, sum(styles.values()))
  return {"asks_first": asks_first / n, "asks": asks / n, "topical_turns": topical / n,
          "styles": {k: v / taught for k, v in styles.items()}}


def twin_prediction(pref: np.ndarray, mu_ask: float, mu_styles: np.ndarray, alpha: float = 0.01,
                    num_iters: int = 10000, tau: float | None = None) -> dict[str, Any]:
  """Solves the twin game exactly: MTPO (Eq. 2), MTPO-tau (tau None: the theory's alpha*eta_t mixing; a float:
  the experiments' constant tau) and multi-turn RLHF on a BT reward fitted
  to mu's data (digest C6). Returns each policy's distribution over the final strategies, its exploitability
  (regularised, Lemma 3.2: max_pi' P_alpha(pi' > pi) - 1/2), the best pure strategy against it among those mu
  plays (with mu_ask = 0 the game has no discover) and that strategy's unregularised win rate, and P(MTPO > RLHF)
  unregularised and regularised."""
  game = instances.strategy_game(pref, mu_ask, mu_styles)
  reward = baselines.final_state_reward_model(game, game.mu)
  policies = {
      "MTPO": mdp_lib.index_policy(algorithms.run_mtpo(game, alpha, num_iters).policies, -1),
      "MTPO-tau": mdp_lib.index_policy(algorithms.run_mtpo_tau(game, alpha, num_iters, tau=tau).policies, -1),
      "RLHF-m": mdp_lib.index_policy(algorithms.run_rlhf(game, reward, alpha, num_iters).policies, -1),
      "SFT": game.mu,
  }
  pref = np.asarray(pref, np.float64)
  out: dict[str, Any] = {"alpha": alpha, "mu_ask": mu_ask, "mu_styles": np.asarray(mu_styles).tolist(),
                         "bt_reward": np.asarray(reward)[0].tolist(), "policies": {}}
  reachable = np.asarray(values.reach_probs(game, game.mu)[-1][0]) > 0  # strategies mu can play (MTPO's support)
  for name, pi in policies.items():
    final = np.asarray(values.reach_probs(game, pi)[-1][0])
    against = np.where(reachable, pref @ final, -np.inf)  # [S] win rate of each playable pure strategy against pi
    out["policies"][name] = {
        "final": final.tolist(), "exploitability": float(nash.exploitability(game, pi, alpha)),
        "best_response": int(np.argmax(against)), "best_response_win_rate": float(against.max())}
  out["mtpo_vs_rlhf"] = float(values.win_probability(game, policies["MTPO"], policies["RLHF-m"]))
  out["mtpo_vs_rlhf_regularised"] = float(
      values.regularized_preference(game, policies["MTPO"], policies["RLHF-m"], alpha))
  return out


def exploitability_proxy(names: Sequence[str], matrix: np.ndarray,
                         columns: Sequence[str]) -> dict[str, tuple[str, float]]:
  """For each name in `columns`: (the row of `matrix` other than itself with the highest win rate against it,
  that win rate); matrix[i][j] = P(names[i] > names[j])."""
  m = np.asarray(matrix, np.float64)
  out = {}
  for col in columns:
    j = list(names).index(col)
    rows = [i for i in range(len(names)) if i != j]
    best = max(rows, key=lambda i: m[i, j])
    out[col] = (names[best], float(m[best, j]))
  return out


def twin_table(prediction: Mapping[str, Any], strategy_names: Sequence[str]) -> str:
  """Markdown: each twin policy's mass on the strategies, exploitability and best response."""
  head = "| twin policy | " + " | ".join(strategy_names) + " | exploitability (regularised) | best pure strategy against it (its win rate) |"
  lines = [head, "|---" * (len(strategy_names) + 3) + "|"]
  for name, p in prediction["policies"].items():
    mass = " | ".join(f"{x:.2f}" for x in p["final"])
    lines.append(f"| {name} | {mass} | {p['exploitability']:.3f} | "
                 f"{strategy_names[p['best_response']]} ({p['best_response_win_rate']:.3f}) |")
  return "\n".join(lines)


def report_markdown(names: Sequence[str], matrix: np.ndarray, low: np.ndarray, high: np.ndarray,
                    trained: Sequence[str], mu_ask: float, mu_styles: np.ndarray, alpha: float = 0.01,
                    profiles: Mapping[str, Mapping[str, Any]] | None = None) -> str:
  """The intransitive experiment's section of results.md from the evaluation's win matrix (trained methods and
  the canonical strategies, named by strategy): the exploitability proxy of every trained policy, MTPO against
  RLHF-m, and the twin's prediction from the strategies' own sub-matrix."""
  m, lo, hi = (np.asarray(x, np.float64) for x in (matrix, low, high))
  idx = {n: i for i, n in enumerate(names)}
  lines = ["### Exploitability proxy", "",
           "The best win rate any other row of the matrix (a trained policy or a canonical strategy) achieves "
           "against each trained policy; 0.5 means nothing here exploits it.", "",
           "| policy | best challenger | its win rate [95% CI] |", "|---|---|---|"]
  for col, (row, p) in exploitability_proxy(names, m, [t for t in trained if t in idx]).items():
    i, j = idx[row], idx[col]
    lines.append(f"| {col} | {row} | {p:.3f} [{lo[i, j]:.2f}, {hi[i, j]:.2f}] |")
  if "MTPO" in idx and "RLHF-m" in idx:
    i, j = idx["MTPO"], idx["RLHF-m"]
    lines += ["", f"MTPO vs RLHF-m: {m[i, j]:.3f} [{lo[i, j]:.2f}, {hi[i, j]:.2f}]."]
  if profiles:
    lines += ["", "### How each policy plays (strategy_profile: cues.py reading its evaluation conversations)", "",
              "| policy | asks first | asks at all | topical teaching turns | "
              + " | ".join(f"{s} lessons" for s in (*attributes.STYLES, "none")) + " |",
              "|---" * (5 + len(attributes.STYLES)) + "|"]
    for name, p in profiles.items():
      lines.append(f"| {name} | {p['asks_first']:.2f} | {p['asks']:.2f} | {p['topical_turns']:.2f} | "
                   + " | ".join(f"{p['styles'][s]:.2f}" for s in (*attributes.STYLES, "none")) + " |")
  strategies = [n.split(":", 1)[1] for n in CANONICAL]
  if not all(s in idx for s in strategies):
    return "\n".join(lines)
  sub = m[np.ix_([idx[s] for s in strategies], [idx[s] for s in strategies])]
  mus = [("mu = the generated SFT data", mu_ask, np.asarray(mu_styles))]
  if profiles and "SFT" in profiles:  # what the trained SFT policy actually plays (unstyled turns left out)
    sft = profiles["SFT"]
    styles = np.array([sft["styles"][s] for s in attributes.STYLES])
    if styles.sum() > 0:
      mus.append(("mu = the trained SFT policy's profile", sft["asks_first"], styles / styles.sum()))
  for title, ask, styles in mus:
    pred = twin_prediction(sub, ask, styles, alpha)
    lines += ["", f"### Tabular twin, {title} (alpha = {alpha}; asks first {ask:.2f}, styles "
              + ", ".join(f"{s} {p:.2f}" for s, p in zip(strategies[1:], styles)) + ")", "",
              "The canonical strategies' sub-matrix above as the preference of tabular/instances.strategy_game, "
              "solved exactly (envs/education/strategy_game.py):", "", twin_table(pred, strategies), "",
              f"Twin: P(MTPO > RLHF-m) = {pred['mtpo_vs_rlhf']:.3f} (regularised, P_alpha: "
              f"{pred['mtpo_vs_rlhf_regularised']:.3f}); the BT reward fitted to mu's pairs ranks "
              + " > ".join(strategies[k] for k in np.argsort(pred["bt_reward"])[::-1]
                           if ask > 0 or strategies[k] != "discover") + "."]
  return "\n".join(lines)
