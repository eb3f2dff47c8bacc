"""Judge prompts, paraphrased in our own words from the MTPO paper (papers/digest.md A10 conversation-level prompt,
A8 single-turn variant). Text only; `EndpointJudge` fills and sends them.

Placeholders: `{context}` (a short header from the context's visible fields, may be empty), `{interaction_1}`,
`{interaction_2}` (rendered conversations), `{conversation}` (the shared history), `{response_1}`, `{response_2}`
(the two candidate agent turns).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from mtpo_jax.types import Turn

CONVERSATION_PROMPT = """\
You are an expert in judging how well teachers run a lesson. Below are two interactions between a teacher and a
student.{context}

A good interaction is about more than whether the student ended up understanding the topic. In a good
interaction the teacher explains clearly and with enthusiasm, invites questions and gets the student to take
part; the student feels at ease asking for clarification, sharing their own thoughts and politely questioning
ideas.

Interaction 1:
{interaction_1}

Interaction 2:
{interaction_2}

Which interaction is better? The order in which they are shown must not influence your answer.
Output 1 or 2 and nothing else."""

SINGLE_TURN_PROMPT = """\
You are an expert in judging how well teachers run a lesson. Below is a conversation between a teacher and a
student so far, followed by two possible next messages from the teacher.{context}

A good interaction is about more than whether the student ended up understanding the topic. In a good
interaction the teacher explains clearly and with enthusiasm, invites questions and gets the student to take
part; the student feels at ease asking for clarification, sharing their own thoughts and politely questioning
ideas.

Conversation so far:
{conversation}

Response 1:
{response_1}

Response 2:
{response_2}

If the conversation went on from each response, which one would lead to the better interaction? The order in
which they are shown must not influence your answer.
Output 1 or 2 and nothing else."""

# Visible context fields shown to the judge, in this order, when present.
CONTEXT_FIELDS = ("topic",)


def render_turns(turns: Sequence[Turn]) -> str:
  """One "Speaker: text" line per turn; an empty history renders as "(no messages yet)"."""
  if not turns:
    return "(no messages yet)"
  return "\n".join(f"{t.role[:1].upper()}{t.role[1:]}: {t.text}" for t in turns)


def render_context(visible: Mapping[str, object]) -> str:
  """A header line such as " The topic of the lesson is: Photosynthesis." (empty when no known field)."""
  parts = [f"The {k} of the lesson is: {visible[k]}." for k in CONTEXT_FIELDS if visible.get(k)]
  return (" " + " ".join(parts)) if parts else ""
