"""PopulationJudge: a panel of raters who weigh the rubric differently, whose aggregate preference is intransitive.

The MTPO paper's case against RLHF rests on preferences no Bradley-Terry reward represents (papers/digest.md C6).
`RubricJudge` (oracles/rubric.py) is sigmoid(score difference), transitive by construction; this judge is the
Education Dialogue ground truth for the experiment where that matters (experiments/pipeline_intransitive_tiny.gin,
docs/intransitive.md).

Each rater e reads a conversation with the default rubric (its criteria, gating and penalties unchanged) and
scores it as

    s_e(x) = sum_k emphasis_e[k] * b_k(x)  +  taste_weight_e * mean over teaching turns t of credit_t * taste_e[style_t]

b_k are the rubric's criterion contributions (`RubricJudge.breakdown`; an unnamed criterion keeps multiplier 1, so
every rater keeps the penalties for hostility, degenerate text and giving up), credit_t is the rubric's own
lesson credit (1 with topic content, 0.5 without, 0 for a degenerate or repeated turn) and taste_e[style] the
rater's own regard for a teaching style. The panel's preference is

    mean:      P(a > b) = mean_e sigmoid((s_e(a) - s_e(b)) / T_e)
    majority:  P(a > b) = mean_e 1[s_e(a) > s_e(b)]  (+1/2 per tie)

both exactly antisymmetric: the mean deviation m = P - 1/2 is a mean of odd functions of (a, b), and P is
evaluated as q = 1/2 + |m| >= 1/2 and 1 - q (exact by Sterbenz) for m < 0, so P(a, b) + P(b, a) == 1 and
P(a, a) == 1/2 bit for bit.

Why tastes and not only emphasis [our choice; the paper's raters are one LLM]: a panel that differs only in
criterion multipliers produced no cycle among the data generator's 20 teacher strategies at the policy level
and none among the canonical strategies, which always had a Condorcet winner (best cycle: min P = 0.528 and
0.498 over a grid of emphasis 2-8, multiplier 0-1 for the others, T 0.25-1; `tools/intransitive_panel.py
--emphasis_grid`), because the rubric's criteria move together across strategies. Raters with rotated pedagogical ideals, the
classic Condorcet profile (content-first: lecture > hands-on > interactive; engagement-first: interactive >
lecture > hands-on; style-first: hands-on > interactive > lecture), produce cycles that survive averaging over
students, the way real rater pools do.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from mtpo_jax.envs.education.attributes import STYLES
from mtpo_jax.oracles.base import check_same_contexts
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.types import Conversation

AGGREGATES = ("mean", "majority")
CRITERIA = ("discovery", "adaptation", "clarity", "participation", "respect", "substance", "degenerate",
            "engagement", "understanding", "ending")


@dataclasses.dataclass(frozen=True)
class Rater:
  """One member of the panel. emphasis: criterion (CRITERIA) -> multiplier of its rubric contribution (1 when
  unnamed); taste: teaching style (envs/education/attributes.STYLES) -> value of a lesson in it (0 when unnamed);
  temperature: the rater's sharpness T_e in sigmoid(d / T_e) (the `mean` aggregate only)."""
  name: str
  emphasis: Mapping[str, float] = dataclasses.field(default_factory=dict)
  taste: Mapping[str, float] = dataclasses.field(default_factory=dict)
  taste_weight: float = 2.0
  temperature: float = 0.5

  def __post_init__(self):
    bad = sorted(set(self.emphasis) - set(CRITERIA))
    if bad:
      raise ValueError(f"rater {self.name!r}: unknown criteria {bad}; expected some of {list(CRITERIA)}")
    bad = sorted(set(self.taste) - set(STYLES))
    if bad:
      raise ValueError(f"rater {self.name!r}: unknown teaching styles {bad}; expected some of {list(STYLES)}")
    if not self.temperature > 0:
      raise ValueError(f"rater {self.name!r}: temperature must be positive, got {self.temperature}")

  def score(self, breakdown: Mapping[str, float], lessons: Sequence[tuple[str | None, float]]) -> float:
    """s_e(x) of the module docstring from the rubric's reading of x."""
    s = sum(self.emphasis.get(k, 1.0) * v for k, v in breakdown.items())
    if lessons:
      s += self.taste_weight * float(np.mean([credit * self.taste.get(style, 0.0) for style, credit in lessons]))
    return float(s)


# The default panel: three raters with rotated ideals (module docstring).
#   content-first counts lessons and their clarity (clarity, substance x4), holds that a preference question takes
#     lesson time (discovery x0) and gives invitations no credit (participation x0);
#   engagement-first values a lesson the student takes part in (participation x4) and does not reward
#     personalisation as such (discovery, adaptation x0);
#   style-first values personalisation (discovery, adaptation x2).
# Tastes are the Condorcet profile over lecture / hands-on / interactive (creative and assessment lessons are
# nobody's favourite), worth up to 8 points, about the rubric's whole range. These values are the best of a
# random search over 6,000 panels (emphasis 0-6, taste weight 2-8, T 0.25-1; `tools/intransitive_panel.py
# --search 6000`): the canonical strategies' policy-level preferences then have no Condorcet winner, and every
# pure strategy loses to another by at least 0.576 (docs/intransitive.md).
CONTENT_FIRST = Rater("content-first", emphasis={"clarity": 4.0, "substance": 4.0, "discovery": 0.0,
                                                 "participation": 0.0},
                      taste={"lecture": 1.0, "hands_on": 0.5}, taste_weight=8.0)
ENGAGEMENT_FIRST = Rater("engagement-first", emphasis={"participation": 4.0, "discovery": 0.0, "adaptation": 0.0},
                         taste={"interactive": 1.0, "lecture": 0.5}, taste_weight=8.0)
STYLE_FIRST = Rater("style-first", emphasis={"discovery": 2.0, "adaptation": 2.0},
                    taste={"hands_on": 1.0, "interactive": 0.5}, taste_weight=8.0)
DEFAULT_PANEL = (CONTENT_FIRST, ENGAGEMENT_FIRST, STYLE_FIRST)


def aggregate_preference(s_a: np.ndarray, s_b: np.ndarray, temperatures: np.ndarray,
                         aggregate: str = "mean") -> np.ndarray:
  """[batch] P(a > b) from the raters' scores s_a, s_b: [batch, raters] and temperatures [raters] (module
  docstring); exactly antisymmetric."""
  d = np.asarray(s_a, np.float64) - np.asarray(s_b, np.float64)
  if aggregate == "mean":
    dev = 0.5 * np.tanh(0.5 * d / np.asarray(temperatures, np.float64))  # sigmoid(x) - 1/2, odd in x
  elif aggregate == "majority":
    dev = 0.5 * np.sign(d)
  else:
    raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {AGGREGATES}")
  m = dev.mean(axis=-1)
  q = 0.5 + np.abs(m)
  return np.where(m >= 0, q, 1.0 - q)


class PopulationJudge:
  """Judge (oracles/base.py) of a rater panel; `partial` reads conversation prefixes as RubricJudge does."""

  def __init__(self, raters: Sequence[Rater] = DEFAULT_PANEL, aggregate: str = "mean", partial: bool = False):
    if not raters:
      raise ValueError("PopulationJudge needs at least one rater")
    if aggregate not in AGGREGATES:
      raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {AGGREGATES}")
    self.raters, self.aggregate, self.partial = tuple(raters), aggregate, bool(partial)
    self.rubric = RubricJudge(partial=partial)
    self.temperatures = np.array([r.temperature for r in self.raters], np.float64)
    # a string, so pair caches record the panel (training/pair_sources._describe keeps scalar attributes)
    self.panel = "; ".join(f"{r.name}: emphasis {dict(r.emphasis)}, taste {dict(r.taste)} x {r.taste_weight}, "
                           f"T {r.temperature}" for r in self.raters)

  def rater_scores(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[batch, raters] float64 scores s_e."""
    out = np.zeros((len(conversations), len(self.raters)), np.float64)
    for i, conv in enumerate(conversations):
      breakdown, lessons = self.rubric.read(conv)
      out[i] = [r.score(breakdown, lessons) for r in self.raters]
    return out

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i]); exactly antisymmetric."""
    check_same_contexts(a, b)
    return aggregate_preference(self.rater_scores(a), self.rater_scores(b), self.temperatures, self.aggregate)
