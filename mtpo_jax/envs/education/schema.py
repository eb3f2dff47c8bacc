"""Validation and loading of Education Dialogue files in the released JSON format (digest A10).

A file is one JSON list of records:

    {"background_info": {"topic": str, "student_prefrences": str, "teacher_prefrences": str,
                         "student_reactions": str, "teacher_reactions": str},
     "conversation": [{"role": "Teacher" | "Student", "text": str}, ...],
     "ground_truth": {...}}   # optional: our generator's extra field

The background keys are misspelt exactly so in the released data. The digest does not say how roles are
capitalised, so any capitalisation of "teacher"/"student" is accepted (our generator writes "Teacher" and
"Student"), as long as a record spells each role one way. Every problem is one `Problem`, printed as
`FILE:INDEX: FIELD: what is wrong` (INDEX is "-" for a problem with the whole file). Nothing here writes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any, Iterable, Sequence

from mtpo_jax.types import END_OF_CONVERSATION

BACKGROUND_KEYS = ("topic", "student_prefrences", "teacher_prefrences", "student_reactions", "teacher_reactions")
RECORD_KEYS = ("background_info", "conversation")
OPTIONAL_RECORD_KEYS = ("ground_truth",)
TURN_KEYS = ("role", "text")
ROLES = ("teacher", "student")
MAX_TURNS = 50  # the data asks for 10-15 turns; 50 is absurd
MAX_TEXT_CHARS = 2000
MAX_ATTRIBUTE_CHARS = 500
# Spellings people reach for, mapped to the released ones (difflib catches the rest).
KNOWN_MISSPELLINGS = {"student_preferences": "student_prefrences", "teacher_preferences": "teacher_prefrences",
                      "student_preference": "student_prefrences", "teacher_preference": "teacher_prefrences",
                      "student_reaction": "student_reactions", "teacher_reaction": "teacher_reactions",
                      "background": "background_info", "conversations": "conversation", "turns": "conversation",
                      "speaker": "role", "content": "text", "utterance": "text"}


@dataclasses.dataclass(frozen=True)
class Problem:
  file: str
  index: int | None  # record index; None for the whole file
  field: str
  message: str

  def __str__(self) -> str:
    return f"{self.file}:{'-' if self.index is None else self.index}: {self.field}: {self.message}"


class DataError(ValueError):
  """Raised by `load_released(on_error="raise")`; `.problems` holds every problem found. The first line names the
  files; one line per problem follows (cli_errors.py prints them below the error line)."""
  multiline_message = True

  def __init__(self, problems: Sequence[Problem], max_listed: int = 20):
    self.problems = list(problems)
    lines = [str(p) for p in self.problems[:max_listed]]
    more = len(self.problems) - len(lines)
    if more:
      lines.append(f"... and {more} more")
    files = sorted({p.file for p in self.problems})
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    super().__init__(f"{len(self.problems)} problem(s) in Education Dialogue data ({shown}):\n" + "\n".join(lines))


def _type_name(value: Any) -> str:
  return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
          int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _suggest(key: str, expected: Iterable[str]) -> str | None:
  expected = list(expected)
  if KNOWN_MISSPELLINGS.get(key) in expected:
    return KNOWN_MISSPELLINGS[key]
  close = difflib.get_close_matches(key, expected, n=1, cutoff=0.6)
  return close[0] if close else None


def _check_keys(obj: dict, required: Sequence[str], optional: Sequence[str], where: str) -> list[tuple[str, str]]:
  """(field, message) for misspelt, unexpected and missing keys of an object."""
  out, missing = [], [k for k in required if k not in obj]
  for key in obj:
    if key in required or key in optional:
      continue
    guess = _suggest(str(key), missing)
    if guess is not None:
      missing.remove(guess)
      out.append((f"{where}{key}", f"misspelt key; expected {guess!r}"))
    else:
      out.append((f"{where}{key}", f"unexpected key (allowed: {', '.join(tuple(required) + tuple(optional))})"))
  out += [(f"{where}{k}", "missing") for k in missing]
  return out


def _check_background(info: Any) -> list[tuple[str, str]]:
  if not isinstance(info, dict):
    return [("background_info", f"expected an object, got {_type_name(info)}")]
  out = _check_keys(info, BACKGROUND_KEYS, (), "background_info.")
  for key in BACKGROUND_KEYS:
    if key not in info:
      continue
    value, field = info[key], f"background_info.{key}"
    if not isinstance(value, str):
      out.append((field, f"expected a string, got {_type_name(value)}"))
    elif not value.strip():
      out.append((field, "empty"))
    elif len(value) > MAX_ATTRIBUTE_CHARS:
      out.append((field, f"absurdly long ({len(value)} characters; at most {MAX_ATTRIBUTE_CHARS})"))
  return out


def _check_turn(turn: Any, i: int, last: bool) -> list[tuple[str, str]]:
  where = f"conversation[{i}]"
  if not isinstance(turn, dict):
    return [(where, f"expected an object with 'role' and 'text', got {_type_name(turn)}")]
  out = _check_keys(turn, TURN_KEYS, (), where + ".")
  role, text = turn.get("role"), turn.get("text")
  if "role" in turn and not isinstance(role, str):
    out.append((f"{where}.role", f"expected a string, got {_type_name(role)}"))
  elif isinstance(role, str) and role.lower() not in ROLES:
    guess = _suggest(role.lower(), ROLES)
    hint = f"; did you mean {guess.capitalize()!r}?" if guess else ""
    out.append((f"{where}.role", f"unknown role {role!r} (expected 'Teacher' or 'Student'){hint}"))
  if "text" in turn and not isinstance(text, str):
    out.append((f"{where}.text", f"expected a string, got {_type_name(text)}"))
  elif isinstance(text, str):
    if not text.strip():
      out.append((f"{where}.text", "empty text"))
    elif len(text) > MAX_TEXT_CHARS:
      out.append((f"{where}.text", f"absurdly long ({len(text)} characters; at most {MAX_TEXT_CHARS})"))
    elif not last and END_OF_CONVERSATION in text:
      out.append((f"{where}.text", f"{END_OF_CONVERSATION} before the last turn"))
  return out


def _check_order(turns: list) -> list[tuple[str, str]]:
  """Consecutive turns of one role, and one role spelt two ways."""
  out, spelled, prev = [], {}, None
  for i, turn in enumerate(turns):
    role = turn.get("role") if isinstance(turn, dict) else None
    if not isinstance(role, str) or role.lower() not in ROLES:
      prev = None
      continue
    first = spelled.setdefault(role.lower(), role)
    if first != role:
      out.append((f"conversation[{i}].role", f"role spelt {role!r} here but {first!r} earlier"))
    if prev == role.lower():
      out.append((f"conversation[{i}].role", f"two consecutive {role!r} turns ({i - 1} and {i})"))
    prev = role.lower()
  return out


def _check_conversation(turns: Any) -> list[tuple[str, str]]:
  if not isinstance(turns, list):
    return [("conversation", f"expected a list of turns, got {_type_name(turns)}")]
  if not turns:
    return [("conversation", "empty conversation")]
  out = []
  if len(turns) > MAX_TURNS:
    out.append(("conversation", f"absurdly many turns ({len(turns)}; at most {MAX_TURNS})"))
  for i, turn in enumerate(turns):
    out += _check_turn(turn, i, last=i == len(turns) - 1)
  return out + _check_order(turns)


def record_problems(record: Any, file: str, index: int) -> list[Problem]:
  """Every problem of one record."""
  if not isinstance(record, dict):
    found = [("<record>", f"expected an object, got {_type_name(record)}")]
  else:
    found = _check_keys(record, RECORD_KEYS, OPTIONAL_RECORD_KEYS, "")
    if "background_info" in record:
      found += _check_background(record["background_info"])
    if "conversation" in record:
      found += _check_conversation(record["conversation"])
    if "ground_truth" in record and not isinstance(record["ground_truth"], dict):
      found.append(("ground_truth", f"expected an object, got {_type_name(record['ground_truth'])}"))
  return [Problem(file, index, field, msg) for field, msg in found]


def parse_text(text: str, file: str) -> tuple[list | None, list[Problem]]:
  """(records or None, file-level problems) of a file's text."""
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    hint = "; it looks like JSON Lines, expected one JSON list" if e.msg == "Extra data" else ""
    return None, [Problem(file, None, "<file>", f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}){hint}")]
  if not isinstance(data, list):
    return None, [Problem(file, None, "<file>", f"top level is {_type_name(data)}; expected a list of records")]
  if not data:
    return None, [Problem(file, None, "<file>", "no records (empty list)")]
  return data, []


def read_file(path: str) -> tuple[list | None, list[Problem]]:
  """(records or None, file-level problems) of a file: unreadable, not UTF-8, not JSON, not a list, empty."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    return None, [Problem(path, None, "<file>", f"cannot read ({e.strerror or e})")]
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    return None, [Problem(path, None, "<file>", f"not valid UTF-8 (byte {e.start})")]
  return parse_text(text, path)


def validate_file(path: str) -> tuple[list, list[Problem]]:
  """(records, every problem) of one file; records are [] when the file itself is broken."""
  data, problems = read_file(path)
  if data is None:
    return [], problems
  for i, record in enumerate(data):
    problems += record_problems(record, path, i)
  return data, problems


@dataclasses.dataclass
class LoadReport:
  files: int = 0
  broken_files: int = 0
  records: int = 0
  loaded: int = 0
  skipped: int = 0
  problems: list[Problem] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    return (f"{self.files} file(s), {self.records} record(s): {self.loaded} loaded, {self.skipped} skipped, "
            f"{self.broken_files} unreadable file(s), {len(self.problems)} problem(s)")


def load_released(paths: Sequence[str] | str, on_error: str = "raise",
                  max_listed: int = 20) -> tuple[list[dict], LoadReport]:
  """Records of released-format files, validated. `on_error="raise"` raises one DataError listing the first
  `max_listed` problems; `"skip"` drops bad records (and broken files) and reports them."""
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
  paths = [paths] if isinstance(paths, str) else list(paths)
  report, records = LoadReport(files=len(paths)), []
  for path in paths:
    data, file_problems = read_file(path)
    report.problems += file_problems
    if data is None:
      report.broken_files += 1
      continue
    for i, record in enumerate(data):
      report.records += 1
      problems = record_problems(record, path, i)
      report.problems += problems
      if problems:
        report.skipped += 1
      else:
        records.append(record)
  if report.problems and on_error == "raise":
    raise DataError(report.problems, max_listed)
  report.loaded = len(records)
  return records, report
