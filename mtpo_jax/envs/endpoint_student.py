"""A `Student` played by a prompted LLM behind an OpenAI-compatible endpoint (papers/digest.md A9-A10).

The system prompt gives the model the student's hidden attributes (learning preference and reaction) and the
topic; the conversation so far follows as chat messages, the agent's (teacher's) turns as "user" and the
student's own earlier turns as "assistant". The reply is cleaned of role prefixes the model may add
("Student:") and cut where the model starts writing the teacher's next line; `[end of conversation]` is kept.
Endpoint failures propagate as `ChatError` after the client's retries; an empty reply raises.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from mtpo_jax.openai_client import ChatClient
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation

# Hidden-field names accepted for the student's attributes (the released data spells "prefrences").
PREFERENCE_KEYS = ("student_preferences", "student_prefrences", "student_preference", "learning_preference",
                   "preference")
REACTION_KEYS = ("student_reactions", "student_reaction", "reaction")
TOPIC_KEYS = ("topic",)

STUDENT_SYSTEM_PROMPT = """\
You are role-playing a student in a one-on-one lesson with a teacher. The topic is: {topic}.
How you like to learn: {preference}
How you react when the teaching does not suit you: {reaction}
The teacher does not know these things about you; act them out instead of stating them outright.
Reply with your next message only, in the first person, one or two short paragraphs at most. Do not write the
teacher's lines. When you want to stop the lesson, finish your message with "[end of conversation]"."""


class EmptyReplyError(ValueError):
  """The endpoint answered, but nothing was left after removing role prefixes."""


def _first(mapping: Mapping[str, Any], keys: Sequence[str], what: str, context_id: str) -> str:
  for k in keys:
    if k in mapping and mapping[k] not in (None, ""):
      v = mapping[k]
      return "; ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
  raise KeyError(f"context {context_id!r} has no {what} (looked for {list(keys)} in {sorted(mapping)})")


def education_system_prompt(context: Context) -> str:
  """The student's instructions for one Education Dialogue context (hidden preference/reaction, topic)."""
  fields = {**context.visible, **context.hidden}
  return STUDENT_SYSTEM_PROMPT.format(
      topic=_first(fields, TOPIC_KEYS, "topic", context.context_id),
      preference=_first(context.hidden, PREFERENCE_KEYS, "student preference", context.context_id),
      reaction=_first(context.hidden, REACTION_KEYS, "student reaction", context.context_id))


def clean_reply(text: str, own_name: str = "Student", other_name: str = "Teacher") -> str:
  """Strips leading role prefixes ("Student:", "**Student**:") and anything from a line starting with the other
  side's name on. `[end of conversation]` is kept (normalised to END_OF_CONVERSATION)."""
  names = "|".join(re.escape(n) for n in (own_name, "assistant"))
  prefix = re.compile(rf"^\s*[*_]*\s*(?:{names})\s*[*_]*\s*:\s*[*_]*\s*", re.IGNORECASE)
  other = re.compile(rf"^\s*[*_]*\s*{re.escape(other_name)}\s*[*_]*\s*:", re.IGNORECASE | re.MULTILINE)
  while (m := prefix.match(text)) is not None and m.end() > 0:
    text = text[m.end():]
  cut = other.search(text)
  if cut is not None:
    text = text[:cut.start()]
  text = re.sub(r"\[\s*end of conversation\s*\]", END_OF_CONVERSATION, text, flags=re.IGNORECASE)
  return text.strip()


def conversation_messages(conversation: Conversation, system_prompt: str) -> list[dict[str, str]]:
  """Chat messages for the environment side: system, then agent turns as "user", own turns as "assistant"."""
  messages = [{"role": "system", "content": system_prompt}]
  for turn in conversation.turns:
    role = "user" if turn.is_agent else "assistant"
    if messages[-1]["role"] == role:  # two turns in a row from one side: keep them as one message
      messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n" + turn.text}
    else:
      messages.append({"role": role, "content": turn.text})
  return messages


class EndpointStudent:
  """`Student` backed by a chat endpoint. `system_prompt(context)` builds the instructions (default: the
  Education Dialogue student); `own_name`/`other_name` are the speaker names cleaned from replies."""

  def __init__(self, client: ChatClient, *,
               system_prompt: Callable[[Context], str] = education_system_prompt,
               own_name: str = "Student", other_name: str = "Teacher", **request_overrides: Any):
    self.client = client
    self.system_prompt = system_prompt
    self.own_name, self.other_name = own_name, other_name
    self.request_overrides = request_overrides

  def messages(self, conversation: Conversation) -> list[dict[str, str]]:
    if not conversation.turns or not conversation.turns[-1].is_agent:
      raise ValueError(f"conversation {conversation.context.context_id!r}: the student replies to an agent turn, "
                       "but the last turn is not the agent's")
    return conversation_messages(conversation, self.system_prompt(conversation.context))

  def reply(self, conversations: Sequence[Conversation]) -> list[str]:
    batch = [self.messages(c) for c in conversations]
    replies = self.client.complete_batch(batch, **self.request_overrides)
    out = []
    for conv, r in zip(conversations, replies):
      text = clean_reply(r.text, self.own_name, self.other_name)
      if not text:
        raise EmptyReplyError(f"conversation {conv.context.context_id!r}: empty student reply from "
                              f"{self.client.url} (raw: {r.text[:200]!r})")
      out.append(text)
    return out
