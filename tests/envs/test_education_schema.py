"""Released-format validation (one `FILE:INDEX: FIELD: ...` line per problem), the CLI, the loader, conversion."""

import json
import os
import subprocess
import sys

import pytest

from mtpo_jax import data_cli
from mtpo_jax.envs.education import convert, generator, schema
from mtpo_jax.types import Conversation, Turn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _valid():
  return {"background_info": {"topic": "Gravity", "student_prefrences": "hands-on", "teacher_prefrences": "lecture",
                              "student_reactions": "might tell the teacher", "teacher_reactions": "gives up"},
          "conversation": [{"role": "Teacher", "text": "Hi! Today: gravity."},
                           {"role": "Student", "text": "Okay."},
                           {"role": "Teacher", "text": "Bye! [end of conversation]"}]}


def _edit(fn):
  record = _valid()
  fn(record)
  return json.dumps([_valid(), record])  # the bad record is index 1


def _set(path, value):
  def fn(r):
    obj = r
    for key in path[:-1]:
      obj = obj[key]
    obj[path[-1]] = value
  return fn


def _rename(path, old, new):
  def fn(r):
    obj = r
    for key in path:
      obj = obj[key]
    obj[new] = obj.pop(old)
  return fn


def _turns(turns):
  return _set(["conversation"], turns)


T, S = {"role": "Teacher", "text": "Explain."}, {"role": "Student", "text": "Sure."}
# (name, file text or bytes, index, field, part of the message)
MALFORMED = [
    ("not_json", "[{\"background_info\": ", "-", "<file>", "not valid JSON"),
    ("json_lines", json.dumps(_valid()) + "\n" + json.dumps(_valid()), "-", "<file>", "looks like JSON Lines"),
    ("top_level_object", json.dumps(_valid()), "-", "<file>", "top level is an object; expected a list"),
    ("empty_list", "[]", "-", "<file>", "no records"),
    ("not_utf8", b"[\xff\xfe]", "-", "<file>", "not valid UTF-8"),
    ("record_not_object", json.dumps([_valid(), "hello"]), "1", "<record>", "expected an object, got a string"),
    ("missing_background", _edit(lambda r: r.pop("background_info")), "1", "background_info", "missing"),
    ("misspelt_preferences", _edit(_rename(["background_info"], "student_prefrences", "student_preferences")), "1",
     "background_info.student_preferences", "misspelt key; expected 'student_prefrences'"),
    ("misspelt_conversation", _edit(_rename([], "conversation", "conversations")), "1", "conversations",
     "misspelt key; expected 'conversation'"),
    ("unexpected_key", _edit(_set(["rating"], 5)), "1", "rating", "unexpected key"),
    ("background_not_object", _edit(_set(["background_info"], ["Gravity"])), "1", "background_info",
     "expected an object, got a list"),
    ("topic_wrong_type", _edit(_set(["background_info", "topic"], 7)), "1", "background_info.topic",
     "expected a string, got a number"),
    ("empty_attribute", _edit(_set(["background_info", "teacher_reactions"], " ")), "1",
     "background_info.teacher_reactions", "empty"),
    ("overlong_attribute", _edit(_set(["background_info", "topic"], "x" * 600)), "1", "background_info.topic",
     "absurdly long"),
    ("conversation_not_list", _edit(_set(["conversation"], "Teacher: hi")), "1", "conversation",
     "expected a list of turns, got a string"),
    ("empty_conversation", _edit(_turns([])), "1", "conversation", "empty conversation"),
    ("turn_not_object", _edit(_turns([T, "Student: hi"])), "1", "conversation[1]", "expected an object"),
    ("unknown_role", _edit(_turns([{"role": "Tutor", "text": "Hi"}])), "1", "conversation[0].role",
     "unknown role 'Tutor'"),
    ("misspelt_role", _edit(_turns([T, {"role": "Studnet", "text": "Hi"}])), "1", "conversation[1].role",
     "did you mean 'Student'?"),
    ("role_wrong_type", _edit(_turns([{"role": None, "text": "Hi"}])), "1", "conversation[0].role",
     "expected a string, got null"),
    ("missing_text", _edit(_turns([{"role": "Teacher"}])), "1", "conversation[0].text", "missing"),
    ("misspelt_turn_key", _edit(_turns([{"speaker": "Teacher", "text": "Hi"}])), "1", "conversation[0].speaker",
     "misspelt key; expected 'role'"),
    ("text_wrong_type", _edit(_turns([T, {"role": "Student", "text": ["Hi"]}])), "1", "conversation[1].text",
     "expected a string, got a list"),
    ("empty_text", _edit(_turns([T, {"role": "Student", "text": "  "}])), "1", "conversation[1].text", "empty text"),
    ("overlong_text", _edit(_turns([T, {"role": "Student", "text": "blah " * 500}])), "1", "conversation[1].text",
     "absurdly long"),
    ("consecutive_roles", _edit(_turns([T, S, T, T, S])), "1", "conversation[3].role",
     "two consecutive 'Teacher' turns (2 and 3)"),
    ("too_many_turns", _edit(_turns([T, S] * 30)), "1", "conversation", "absurdly many turns (60"),
    ("early_end_marker", _edit(_turns([T, {"role": "Student", "text": "Bye [end of conversation]"}, T])), "1",
     "conversation[1].text", "[end of conversation] before the last turn"),
    ("inconsistent_role_spelling", _edit(_turns([T, S, {"role": "teacher", "text": "Hi"}])), "1",
     "conversation[2].role", "role spelt 'teacher' here but 'Teacher' earlier"),
    ("ground_truth_not_object", _edit(_set(["ground_truth"], 0.7)), "1", "ground_truth",
     "expected an object, got a number"),
]


@pytest.mark.parametrize("name,content,index,field,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_each_malformed_input_gives_its_one_line_error(tmp_path, capsys, name, content, index, field, message):
  path = tmp_path / f"{name}.json"
  path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
  assert data_cli.main(["validate", str(path)]) == 1
  out, err = capsys.readouterr()
  lines = out.splitlines()
  assert len(lines) == 1, out
  prefix = f"{path}:{index}: {field}: "
  assert lines[0].startswith(prefix), (lines[0], prefix)
  assert message in lines[0][len(prefix):], lines[0]
  assert "FAILED" in err


def test_missing_file_and_clean_files(tmp_path, capsys):
  missing = tmp_path / "nope.json"
  assert data_cli.main(["validate", str(missing)]) == 1
  assert capsys.readouterr().out.splitlines() == [f"{missing}:-: <file>: cannot read (No such file or directory)"]
  good = tmp_path / "good.json"
  good.write_text(json.dumps([_valid()] + generator.generate(3, seed=0)))
  assert data_cli.main(["validate", str(good), str(good)]) == 0
  assert capsys.readouterr().out.splitlines() == ["OK: 2 file(s), 8 record(s), no problems"]


def test_cli_in_a_subprocess_reports_every_problem_and_exit_codes(tmp_path):
  bad, good = tmp_path / "bad.json", tmp_path / "good.json"
  records = [_valid() for _ in range(3)]
  records[0]["background_info"]["teacher_preferences"] = records[0]["background_info"].pop("teacher_prefrences")
  records[2]["conversation"][1]["text"] = ""
  bad.write_text(json.dumps(records))
  good.write_text(json.dumps([_valid()]))
  cmd = [sys.executable, "-m", "mtpo_jax.data_cli", "validate", str(good), str(bad)]
  run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
  assert run.returncode == 1
  assert run.stdout.splitlines() == [
      f"{bad}:0: background_info.teacher_preferences: misspelt key; expected 'teacher_prefrences'",
      f"{bad}:2: conversation[1].text: empty text"]
  clean = subprocess.run(cmd[:-1], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert clean.returncode == 0 and clean.stdout.strip() == "OK: 1 file(s), 1 record(s), no problems"
  usage = subprocess.run(cmd[:3], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert usage.returncode == 2


def test_validation_writes_nothing(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text("[1, 2]")
  before = sorted(os.listdir(tmp_path)), path.read_text()
  data_cli.main(["validate", str(path)])
  assert (sorted(os.listdir(tmp_path)), path.read_text()) == before


def _files(tmp_path):
  good, mixed, broken = tmp_path / "good.json", tmp_path / "mixed.json", tmp_path / "broken.json"
  good.write_text(json.dumps([_valid(), _valid()]))
  bad = _valid()
  bad["conversation"] = []
  mixed.write_text(json.dumps([_valid(), bad, "x", _valid()]))
  broken.write_text("{not json")
  return [str(good), str(mixed), str(broken)]


def test_loader_skip_drops_bad_records_and_reports(tmp_path):
  paths = _files(tmp_path)
  records, report = schema.load_released(paths, on_error="skip")
  assert records == [_valid()] * 4
  assert (report.files, report.broken_files, report.records, report.loaded, report.skipped) == (3, 1, 6, 4, 2)
  assert [str(p) for p in report.problems] == [
      f"{paths[1]}:1: conversation: empty conversation",
      f"{paths[1]}:2: <record>: expected an object, got a string",
      f"{paths[2]}:-: <file>: not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"]
  assert "4 loaded, 2 skipped" in report.summary()


def test_loader_raise_lists_first_problems(tmp_path):
  paths = _files(tmp_path)
  with pytest.raises(schema.DataError) as e:
    schema.load_released(paths, on_error="raise", max_listed=2)
  assert len(e.value.problems) == 3
  msg = str(e.value)
  assert msg.splitlines()[0] == f"3 problem(s) in Education Dialogue data ({', '.join(sorted(paths[1:]))}):"
  assert f"{paths[1]}:1: conversation: empty conversation" in msg and "... and 1 more" in msg
  assert schema.load_released(paths[0])[0] == [_valid()] * 2  # clean data loads in raise mode
  with pytest.raises(ValueError):
    schema.load_released(paths, on_error="ignore")


def test_round_trip_json_to_conversation_to_json_is_exact():
  records = generator.generate(50, seed=5)
  convs = convert.records_to_conversations(records, prefix="train")
  assert json.dumps([convert.conversation_to_record(c) for c in convs]) == json.dumps(records)
  c = convs[0]
  assert c.context.context_id == "train-0" and c.done
  assert set(c.context.visible) == {"topic"}
  assert set(c.context.hidden) == {"student_preference", "student_reaction", "teacher_preference",
                                   "teacher_reaction"}
  assert c.context.hidden["student_preference"] == records[0]["background_info"]["student_prefrences"]
  assert c.context.extra["ground_truth"] == records[0]["ground_truth"]
  assert [t.role for t in c.turns[:2]] == ["teacher", "student"] and c.turns[0].is_agent
  assert not c.turns[1].is_agent
  assert c.num_agent_turns == sum(t["role"] == "Teacher" for t in records[0]["conversation"])


def test_round_trip_keeps_other_role_spellings_and_extra_keys():
  record = _valid()
  for t in record["conversation"]:
    t["role"] = t["role"].lower()
  record["ground_truth"] = {"outcome": 0.5}
  conv = convert.record_to_conversation(record)
  assert conv.context.context_id == convert.record_id(record)
  assert convert.conversation_to_record(conv) == record
  assert schema.record_problems(record, "f", 0) == []


def test_conversation_to_record_and_back():
  conv = convert.record_to_conversation(_valid(), "c")
  conv2 = Conversation(conv.context, conv.turns + (Turn("student", "ok", False),), done=True)
  back = convert.record_to_conversation(convert.conversation_to_record(conv2), "c")
  assert back == conv2
  ctx = convert.context_of(dict(_valid(), ground_truth={"outcome": 1.0}), "c")
  assert (ctx.context_id, ctx.visible, ctx.hidden, ctx.extra) == ("c", conv.context.visible, conv.context.hidden, {})
