"""The intransitive rater panel's figures (docs/intransitive.md), from the judge alone (no training):

    python tools/intransitive_panel.py                      # matrix, BT accuracies, tabular twin
    python tools/intransitive_panel.py --emphasis_grid      # panels without tastes: how intransitive can they be?
    python tools/intransitive_panel.py --search 6000        # the random search behind the default panel

1. The canonical strategies' policy-level matrix under the panel (oracles/population.py) on --contexts held-out
   test contexts, 3 teacher turns, the scripted student.
2. Bradley-Terry misfit: the panel's own accuracy on its labels (mean max(P, 1 - P)) against the best any BT
   model reaches (the best total order: a BT model predicts by the order of its rewards), at the conversation
   level (six conversations per context, a reward each) and at the policy level (a reward per strategy); the
   rubric beside it.
3. The tabular twin (tabular/instances.strategy_game with mu from the generated SFT data), solved exactly.
4. --emphasis_grid: panels whose raters differ only in criterion emphasis (no tastes), on the data generator's
   20 scripted teachers and on the canonical strategies: the strongest 3-cycle (min P on it) and how exploitable
   the best pure strategy is.
5. --search N: N random panels (emphasis 0-6 per criterion group, taste weight 2-8, T 0.25-1, the Condorcet
   tastes); prints the five with the most exploitable best pure strategy.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from mtpo_jax.envs import registry  # noqa: E402
from mtpo_jax.envs.education import attributes, scripted_teacher, strategy_game  # noqa: E402
from mtpo_jax.oracles.population import CRITERIA, DEFAULT_PANEL, PopulationJudge, aggregate_preference  # noqa: E402
from mtpo_jax.oracles.rubric import RubricJudge  # noqa: E402

STRATEGIES = scripted_teacher.canonical_names()
SHORT = [n.split(":", 1)[1] for n in STRATEGIES]


def fmt(m: np.ndarray, names) -> str:
  lines = ["| row > col | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  lines += [f"| {n} | " + " | ".join("-" if i == j else f"{m[i, j]:.3f}" for j in range(len(names))) + " |"
            for i, n in enumerate(names)]
  return "\n".join(lines)


def report(num_contexts: int, alpha: float) -> None:
  contexts = registry.contexts("education", num_contexts, 0, "test")
  played = {n: scripted_teacher.play(n, contexts, max_agent_turns=3) for n in STRATEGIES}
  for label, judge in (("panel", PopulationJudge()), ("rubric", RubricJudge())):
    m = strategy_game.pairwise_matrix(judge, [played[n] for n in STRATEGIES])
    conv_own, conv_bt = [], []
    for c in range(num_contexts):
      p = strategy_game.pairwise_matrix(judge, [[played[n][c]] for n in STRATEGIES])
      conv_own.append(strategy_game.own_accuracy(p))
      conv_bt.append(strategy_game.best_order_accuracy(p))
    print(f"## {label}: policy-level matrix on {num_contexts} test contexts\n\n{fmt(m, SHORT)}\n")
    print(f"{label}: conversation level, own accuracy {np.mean(conv_own):.4f}, best BT {np.mean(conv_bt):.4f}; "
          f"policy level, own {strategy_game.own_accuracy(m):.4f}, best BT "
          f"{strategy_game.best_order_accuracy(m):.4f}\n")
    if label == "panel":
      panel_matrix = m
  mu_ask, mu_styles = strategy_game.data_policy_rates()
  pred = strategy_game.twin_prediction(panel_matrix, mu_ask, mu_styles, alpha)
  print(f"## tabular twin (alpha {alpha}; mu asks first {mu_ask:.3f}, styles "
        + ", ".join(f"{s} {p:.3f}" for s, p in zip(attributes.STYLES, mu_styles)) + ")\n")
  print(strategy_game.twin_table(pred, SHORT))
  print(f"\nP(MTPO > RLHF-m) = {pred['mtpo_vs_rlhf']:.3f}, regularised {pred['mtpo_vs_rlhf_regularised']:.3f}; "
        "BT reward " + ", ".join(f"{s} {r:.2f}" for s, r in zip(SHORT, pred["bt_reward"])))


def _features(names, num_contexts):
  """Per strategy and context: the rubric's criteria [S, C, K] and each style's lesson credit share [S, C, 5]."""
  contexts = registry.contexts("education", num_contexts, 0, "test")
  rubric = RubricJudge()
  b, t = [], []
  for n in names:
    reads = [rubric.read(c) for c in scripted_teacher.play(n, contexts, max_agent_turns=3)]
    b.append([[bd[k] for k in CRITERIA] for bd, _ in reads])
    t.append([[np.mean([cr * (st == s) for st, cr in ls]) if ls else 0.0 for s in attributes.STYLES]
              for _, ls in reads])
  return np.array(b), np.array(t)


def _matrix(b, t, emphasis, tastes, taste_weight, temperature):
  s = np.einsum("sck,ek->sce", b, emphasis) + taste_weight * np.einsum("scz,ez->sce", t, tastes)
  return aggregate_preference(s[:, None], s[None], np.full(emphasis.shape[0], temperature)).mean(-1)


def _strongest_cycle(m):
  best = (0.0, None)
  for i, j, k in itertools.permutations(range(len(m)), 3):
    v = min(m[i, j], m[j, k], m[k, i])
    best = max(best, (v, (i, j, k)), key=lambda x: x[0])
  return best


GROUPS = {"content": ("clarity", "understanding", "substance"), "engagement": ("engagement", "participation"),
          "style": ("adaptation", "discovery")}


def emphasis_grid(num_contexts: int) -> None:
  for label, names in (("scripted teachers", scripted_teacher.all_names()), ("canonical strategies", STRATEGIES)):
    b, t = _features(names, num_contexts)
    best, most_exploitable = (0.0, None, None), 0.0
    for focus, other, temp in itertools.product((2, 4, 8), (0.0, 0.5, 1.0), (0.25, 0.5, 1.0)):
      emph = np.ones((3, len(CRITERIA)))
      for e, keys in enumerate(GROUPS.values()):
        for k, crit in enumerate(CRITERIA):
          if crit in keys:
            emph[e, k] = focus
          elif any(crit in v for v in GROUPS.values()):
            emph[e, k] = other
      m = _matrix(b, t, emph, np.zeros((3, len(attributes.STYLES))), 0.0, temp)
      v, cyc = _strongest_cycle(m)
      if v > best[0]:
        best = (v, (focus, other, temp), [names[i] for i in cyc])
      most_exploitable = max(most_exploitable, float((m - 0.5).max(0).min()))
    print(f"{label}: strongest 3-cycle over the emphasis-only grid: min P {best[0]:.3f} at (focus, others, T) "
          f"{best[1]}: {best[2]}; the best pure strategy is exploitable by at most {most_exploitable:.3f}")


def search(num_panels: int, num_contexts: int, seed: int = 1) -> None:
  b, t = _features(STRATEGIES, num_contexts)
  tastes = np.array([[r.taste.get(s, 0.0) for s in attributes.STYLES] for r in DEFAULT_PANEL])
  k = {c: i for i, c in enumerate(CRITERIA)}
  rng = np.random.default_rng(seed)
  results = []
  for _ in range(num_panels):
    emph = np.ones((3, len(CRITERIA)))
    low, up = lambda: rng.choice([0, 0.5, 1]), lambda: rng.choice([2, 3, 4, 6])
    emph[0, k["substance"]], emph[0, k["clarity"]], emph[0, k["understanding"]] = up(), up(), rng.choice([1, 2, 3])
    for c in ("discovery", "adaptation", "engagement", "participation"):
      emph[0, k[c]] = low()
    emph[1, k["participation"]], emph[1, k["engagement"]] = up(), rng.choice([1, 2, 3])
    emph[1, k["discovery"]], emph[1, k["adaptation"]] = low(), low()
    emph[2, k["adaptation"]], emph[2, k["discovery"]] = rng.choice([1, 2, 3]), rng.choice([1, 2, 3])
    tw, temp = rng.choice([2, 4, 6, 8]), rng.choice([0.25, 0.5, 1.0])
    m = _matrix(b, t, emph, tastes, tw, temp)
    results.append(((m - 0.5).max(0).min(), emph, tw, temp))
  results.sort(key=lambda r: -r[0])
  for v, emph, tw, temp in results[:5]:
    print(f"best pure strategy exploitable by {v:.3f}: taste weight {tw}, T {temp}")
    for e, r in enumerate(DEFAULT_PANEL):
      print(f"    {r.name}: " + ", ".join(f"{c} x{emph[e, k[c]]:g}" for c in CRITERIA if emph[e, k[c]] != 1))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--contexts", type=int, default=128)
  parser.add_argument("--alpha", type=float, default=0.01, help="the twin's KL weight (RLHF-m's in runs/)")
  parser.add_argument("--emphasis_grid", action="store_true")
  parser.add_argument("--search", type=int, default=0, metavar="N")
  args = parser.parse_args(argv)
  if args.emphasis_grid:
    emphasis_grid(args.contexts)
  elif args.search:
    search(args.search, args.contexts)
  else:
    report(args.contexts, args.alpha)
  return 0


if __name__ == "__main__":
  sys.exit(main())
