"""Human-readable views of an evaluation: the win matrix as Markdown and as a heatmap, learning curves from runs'
metrics.jsonl, and a samples file with a few conversations per method, turn by turn, with the judge's score.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mtpo_jax import atomic_files  # noqa: E402
from mtpo_jax.evaluation.win_matrix import WinMatrix, judge_scores  # noqa: E402
from mtpo_jax.types import Conversation  # noqa: E402

# Learning-curve panels: (metrics key, its 95% half-width key or None, title).
CURVES = (("win_rate_vs_reference", "win_rate_ci95", "win rate vs reference (95% CI)"),
          ("kl_to_reference", None, "KL to reference"),
          ("value_loss", None, "value loss"))


def _short(x: float, digits: int) -> str:
  """0.9091 -> '.909' (the paper's style); 1.0 -> '1.00..'; negative values keep their sign."""
  s = f"{x:.{digits}f}"
  return s.replace("0.", ".", 1) if s.startswith(("0.", "-0.")) else s


def markdown_table(result: WinMatrix) -> str:
  """The [M, M] matrix as a Markdown table, header "row \\ col", entries like `.909 [.88, .93]`, diagonal "-";
  followed by a caption and, when the judge scores conversations, a table of mean scores."""
  names = result.names
  seeded = result.seed_counts is not None and max(result.seed_counts) > 1
  sd = lambda i, j: f" ({_short(result.seed_std[i, j], 3)})" if seeded else ""
  lines = ["| row \\ col | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for i, row in enumerate(names):
    cells = ["-" if i == j else f"{_short(result.matrix[i, j], 3)}{sd(i, j)} [{_short(result.low[i, j], 2)}, "
             f"{_short(result.high[i, j], 2)}]" for j in range(len(names))]
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  pct = round(100 * result.confidence)
  lines += ["", f"P(row preferred to col) under {result.judge}, both orders judged and symmetrised, over "
            f"{result.n_contexts} held-out contexts; [{pct}% percentile bootstrap over contexts, "
            f"{result.resamples} resamples]."]
  if seeded:
    lines[-1] += (f" Each entry averages every pair of seeds (runs per method: "
                  f"{', '.join(f'{n} {c}' for n, c in zip(names, result.seed_counts))}); (sd) is the standard "
                  "deviation of the seed-pair means, as in the paper's tables.")
  if result.scores is not None:
    lines += ["", f"| method | mean score [{pct}% CI] |", "|---|---|"]
    lines += [f"| {n} | {s:.3f} [{lo:.3f}, {hi:.3f}] |"
              for n, s, lo, hi in zip(names, result.scores, result.score_low, result.score_high)]
  return "\n".join(lines) + "\n"


def plot_heatmap(result: WinMatrix, path: str) -> None:
  """Writes the matrix as an annotated heatmap PNG (diagonal blank); the title names the judge and K."""
  m = len(result.names)
  shown = np.where(np.eye(m, dtype=bool), np.nan, result.matrix)
  size = 1.6 + 1.1 * m
  fig, ax = plt.subplots(figsize=(size + 1.5, size))
  image = ax.imshow(shown, cmap="RdBu", vmin=0.0, vmax=1.0)
  for i in range(m):
    for j in range(m):
      text = "-" if i == j else f"{_short(result.matrix[i, j], 3)}\n[{_short(result.low[i, j], 2)}, " \
                                f"{_short(result.high[i, j], 2)}]"
      ax.text(j, i, text, ha="center", va="center", fontsize=8,
              color="white" if i != j and abs(result.matrix[i, j] - 0.5) > 0.3 else "black")
  ax.set_xticks(range(m), result.names, rotation=30, ha="right")
  ax.set_yticks(range(m), result.names)
  ax.set_xlabel("col")
  ax.set_ylabel("row")
  ax.set_title(f"P(row > col), judge {result.judge}, {result.n_contexts} contexts")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  fig.tight_layout()
  with atomic_files.replacing(path) as tmp:
    fig.savefig(tmp, dpi=120, format="png")
  plt.close(fig)


def read_metrics(run_dir: str, prefix: str = "train/") -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """key -> (steps [N], values [N]) from run_dir/metrics.jsonl, `prefix` stripped; a step logged twice (a resumed
  run re-logs it) keeps its last value; non-finite values are dropped. {} if the file is missing."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return {}
  by_key: dict[str, dict[int, float]] = {}
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      record = json.loads(line)
      step = int(record.get("step", 0))
      for k, v in record.items():
        if k.startswith(prefix) and isinstance(v, (int, float)) and math.isfinite(v):
          by_key.setdefault(k[len(prefix):], {})[step] = float(v)
  return {k: (np.array(sorted(d)), np.array([d[s] for s in sorted(d)])) for k, d in by_key.items()}


def plot_learning_curves(run_dirs: Mapping[str, str], path: str) -> list[str]:
  """Writes one panel per CURVES key that any run logged (win rate with its 95% band, KL, value loss) against
  the iteration, one line per run; returns the keys plotted ([] writes a figure saying there is nothing)."""
  metrics = {name: read_metrics(d) for name, d in run_dirs.items()}
  panels = [c for c in CURVES if any(c[0] in m for m in metrics.values())]
  fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.6), squeeze=False)
  for ax, (key, band, title) in zip(axes[0], panels):
    for name, m in metrics.items():
      if key not in m:
        continue
      steps, values = m[key]
      (line,) = ax.plot(steps, values, marker="o" if len(steps) < 20 else None, label=name)
      if band and band in m:
        b_steps, half = m[band]
        common, ia, ib = np.intersect1d(steps, b_steps, return_indices=True)
        ax.fill_between(common, values[ia] - half[ib], values[ia] + half[ib], color=line.get_color(), alpha=0.2)
    if key == "win_rate_vs_reference":
      ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
  if not panels:
    axes[0][0].text(0.5, 0.5, "no learning-curve metrics in these runs", ha="center", va="center")
    axes[0][0].set_axis_off()
  fig.tight_layout()
  with atomic_files.replacing(path) as tmp:
    fig.savefig(tmp, dpi=120, format="png")
  plt.close(fig)
  return [c[0] for c in panels]


def samples_markdown(conversations: Mapping[str, Sequence[Conversation]], judge: Any, num_contexts: int = 3) -> str:
  """The first `num_contexts` contexts, each with every method's conversation turn by turn and its score under
  `judge` (when the judge scores conversations); hidden context fields are shown for the reader."""
  names = list(conversations)
  count = min(num_contexts, len(conversations[names[0]]))
  scores = {n: judge_scores(judge, list(conversations[n])[:count]) for n in names}
  out = [f"# Samples: {count} contexts x {len(names)} methods ({', '.join(names)}), judge {type(judge).__name__}",
         ""]
  for k in range(count):
    context = conversations[names[0]][k].context
    out += [f"## Context {k + 1}: `{context.context_id}`", "",
            f"- visible: {json.dumps(dict(context.visible), sort_keys=True, default=str)}",
            f"- hidden: {json.dumps(dict(context.hidden), sort_keys=True, default=str)}", ""]
    for name in names:
      conv = conversations[name][k]
      score = "" if scores[name] is None else f", score {scores[name][k]:.3f}"
      out += [f"### {name} ({conv.num_agent_turns} agent turns, {'done' if conv.done else 'not done'}{score})", ""]
      out += [f"{i + 1}. **{t.role}**{' (agent)' if t.is_agent else ''}: {' '.join(t.text.split()) or '(empty)'}"
              for i, t in enumerate(conv.turns)]
      out.append("")
  return "\n".join(out)
