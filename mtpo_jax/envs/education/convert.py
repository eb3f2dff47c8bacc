"""Released-format JSON records <-> `mtpo_jax.types.Conversation` (teacher = agent), exact in both directions.

    record_to_conversation(record, context_id) -> Conversation
    conversation_to_record(conversation)       -> record

Mapping:
  - `Context.visible` = {"topic"}: all a teacher is told (digest A10: "the teacher is prompted with a topic"
    and "does not know the student's preferences in advance").
  - `Context.hidden` = {"student_preference", "student_reaction", "teacher_preference", "teacher_reaction"}:
    the student simulator and the judge read the student's; the teacher's are kept for the data's teacher
    model and analysis only. Values are the record's strings, unchanged.
  - `Context.extra` = every other top-level key of the record, unchanged and in order (e.g. the generator's
    "ground_truth"), plus "role_names" when the record spells roles other than "Teacher"/"Student".
  - turns: role lower-cased ("teacher"/"student"), `is_agent` = teacher; `done` is True (a record is a
    finished episode).
The record's background keys keep the released spelling ("student_prefrences", ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Sequence

from mtpo_jax.types import Context, Conversation, Turn

AGENT_ROLE, ENV_ROLE = "teacher", "student"
RELEASED_ROLE = {AGENT_ROLE: "Teacher", ENV_ROLE: "Student"}
# (released background key, Context field, Context key)
FIELDS = (("topic", "visible", "topic"), ("student_prefrences", "hidden", "student_preference"),
          ("teacher_prefrences", "hidden", "teacher_preference"), ("student_reactions", "hidden", "student_reaction"),
          ("teacher_reactions", "hidden", "teacher_reaction"))
RECORD_KEYS = ("background_info", "conversation")
ROLE_NAMES = "role_names"


def record_id(record: Mapping[str, Any]) -> str:
  """A stable id from the record's content (for records that come without one)."""
  blob = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")
  return "edu-" + hashlib.sha1(blob).hexdigest()[:16]


def record_to_conversation(record: Mapping[str, Any], context_id: str | None = None) -> Conversation:
  """A validated record (schema.py) as a finished Conversation; `context_id` defaults to `record_id`."""
  info = record["background_info"]
  parts: dict[str, dict] = {"visible": {}, "hidden": {}}
  for key, part, name in FIELDS:
    parts[part][name] = info[key]
  turns, spelled = [], {}
  for t in record["conversation"]:
    role = t["role"].lower()
    spelled.setdefault(role, t["role"])
    turns.append(Turn(role=role, text=t["text"], is_agent=role == AGENT_ROLE))
  extra = {k: v for k, v in record.items() if k not in RECORD_KEYS}
  if any(spelled[r] != RELEASED_ROLE[r] for r in spelled):
    extra[ROLE_NAMES] = {r: spelled[r] for r in spelled}
  cid = context_id if context_id is not None else record_id(record)
  return Conversation(Context(cid, parts["visible"], parts["hidden"], extra), tuple(turns), done=True)


def conversation_to_record(conversation: Conversation) -> dict:
  """The released-format record of a conversation (roles "Teacher"/"Student" unless extra["role_names"])."""
  ctx = conversation.context
  parts = {"visible": ctx.visible, "hidden": ctx.hidden}
  info = {key: parts[part][name] for key, part, name in FIELDS}
  names = {**RELEASED_ROLE, **ctx.extra.get(ROLE_NAMES, {})}
  turns = [{"role": names[t.role], "text": t.text} for t in conversation.turns]
  record = {"background_info": info, "conversation": turns}
  record.update({k: v for k, v in ctx.extra.items() if k != ROLE_NAMES})
  return record


def records_to_conversations(records: Sequence[Mapping[str, Any]], prefix: str | None = None) -> list[Conversation]:
  """Conversations with ids f"{prefix}-{i}" (or content ids when `prefix` is None)."""
  return [record_to_conversation(r, None if prefix is None else f"{prefix}-{i}") for i, r in enumerate(records)]


def context_of(record: Mapping[str, Any], context_id: str | None = None) -> Context:
  """The context an environment episode starts from: turns and `extra` dropped (the record's ground truth
  describes its scripted conversation, not a new episode)."""
  return dataclasses.replace(record_to_conversation(record, context_id).context, extra={})
