"""How conversations become model inputs: one home for the text every model sees, at training and at rollout.

The paper does not give its input format (papers digest A10, [NOT FOUND]); the choice here:

    teacher (policy):   "topic: <topic>\n<history>\nTeacher:"                     -> next teacher turn
    student (env):      "topic: <topic> | learns best: <pref> | reacts: <reaction>\n<history>\nStudent:"
    reward model:       "topic: <topic>\n<conversation>"                           -> one scalar
    preference model:   "topic: <topic>\nA:\n<conversation a>\nB:\n<conversation b>" -> P(A better)
    value model:        the teacher input of the state (one scalar per turn state)

The teacher never sees the student's hidden preference. Histories longer than the token budget lose their
oldest turns first, and a marker says so; the topic header and the newest turns are always kept.
Pure Python: usable from SeqIO tasks, numpy batches and the rollout loop alike.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

TRUNCATION_MARKER = "[earlier turns omitted]"
TokenCounter = Callable[[str], int]
RoleText = tuple[str, str]


def _words(text: str) -> int:
  return len(text.split())


def render_turns(turns: Sequence[RoleText]) -> list[str]:
  return [f"{role}: {text}" for role, text in turns]


def fit_history(header: str, turns: Sequence[RoleText], footer: str, max_tokens: int | None,
                count_tokens: TokenCounter = _words) -> tuple[str, bool]:
  """header + newest turns that fit + footer, joined by newlines; returns (text, truncated)."""
  lines = render_turns(turns)
  if max_tokens is None:
    return "\n".join([header, *lines, footer] if footer else [header, *lines]), False
  budget = max_tokens - count_tokens(header) - (count_tokens(footer) if footer else 0)
  costs = [count_tokens(line) for line in lines]
  kept: list[str] = lines
  if sum(costs) > budget:  # drop the oldest turns; the marker takes part of the budget
    budget -= count_tokens(TRUNCATION_MARKER)
    n = 0
    while n < len(lines) and costs[len(lines) - 1 - n] <= budget:
      budget -= costs[len(lines) - 1 - n]
      n += 1
    kept = lines[len(lines) - n:] if n else []
  truncated = len(kept) < len(lines)
  body = ([TRUNCATION_MARKER] if truncated else []) + kept
  return "\n".join([header, *body] + ([footer] if footer else [])), truncated


def teacher_input(topic: str, turns: Sequence[RoleText], teacher_role: str = "Teacher",
                  max_tokens: int | None = None, count_tokens: TokenCounter = _words) -> tuple[str, bool]:
  """What the policy sees before its next turn: the topic and the conversation so far (no hidden fields)."""
  return fit_history(f"topic: {topic}", turns, f"{teacher_role}:", max_tokens, count_tokens)


def student_input(topic: str, preference: str, reaction: str, turns: Sequence[RoleText],
                  student_role: str = "Student", max_tokens: int | None = None,
                  count_tokens: TokenCounter = _words) -> tuple[str, bool]:
  """What the learned student sees: its hidden background, then the conversation so far."""
  header = f"topic: {topic} | learns best: {preference} | reacts: {reaction}"
  return fit_history(header, turns, f"{student_role}:", max_tokens, count_tokens)


def context_header(visible: Mapping[str, Any]) -> str:
  """The first line of every model input, from a context's visible fields: "topic: <topic>" (Education
  Dialogue) or "car: <key value, ...>" (negotiation; the buyer's budget is hidden, so never shown)."""
  if "topic" in visible:
    return f"topic: {visible['topic']}"
  if "car" in visible:
    return "car: " + ", ".join(f"{k} {v}" for k, v in sorted(visible["car"].items()))
  raise ValueError(f"no input header for visible fields {sorted(visible)} (expected 'topic' or 'car')")


def conversation_input(header: str, turns: Sequence[RoleText], max_tokens: int | None = None,
                       count_tokens: TokenCounter = _words) -> tuple[str, bool]:
  """A whole conversation for a reward model, under its context header (e.g. "topic: Photosynthesis")."""
  return fit_history(header, turns, "", max_tokens, count_tokens)


def pair_input(header: str, turns_a: Sequence[RoleText], turns_b: Sequence[RoleText], max_tokens: int | None = None,
               count_tokens: TokenCounter = _words) -> tuple[str, bool]:
  """Two conversations on one context for a preference model; each gets half the budget."""
  half = None if max_tokens is None else max(1, (max_tokens - count_tokens(header)) // 2)
  a, ta = fit_history("A:", turns_a, "", half, count_tokens)
  b, tb = fit_history("B:", turns_b, "", half, count_tokens)
  return f"{header}\n{a}\n{b}", ta or tb


def agent_turn_examples(turns: Sequence[RoleText], agent_role: str) -> list[tuple[list[RoleText], str]]:
  """(history before the turn, the turn) for every turn spoken by `agent_role`."""
  return [(list(turns[:i]), text) for i, (role, text) in enumerate(turns) if role == agent_role]
