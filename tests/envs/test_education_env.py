"""EducationEnv and ScriptedStudent: protocol, done handling, determinism, errors, reactions to free text."""

import numpy as np
import pytest

from mtpo_jax.envs.base import Environment, Student
from mtpo_jax.envs.education import attributes, convert, generator
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation, Turn

LESSON = "Gravity is a force that pulls every object with mass toward every other object with mass."


def _ctx(i, preference="creative", reaction="might_tell", topic="Gravity"):
  return Context(f"ctx-{i}", {"topic": topic},
                 {"student_preference": attributes.STUDENT_PREFERENCES[preference],
                  "student_reaction": attributes.STUDENT_REACTIONS[reaction],
                  "teacher_preference": attributes.TEACHER_PREFERENCES["lecture"],
                  "teacher_reaction": attributes.TEACHER_REACTIONS["might_insist"]})


def test_protocols_reset_and_step_shapes():
  env = EducationEnv()
  members = set(Environment.__annotations__) | {"reset", "step"}  # the protocols are not runtime-checkable
  assert members == {"agent_role", "env_role", "max_agent_turns", "reset", "step"}
  assert all(hasattr(env, m) for m in members) and callable(env.student.reply) and callable(Student.reply)
  assert (env.agent_role, env.env_role, env.max_agent_turns) == ("teacher", "student", 10)
  convs = env.reset([_ctx(i) for i in range(3)])
  assert [c.turns for c in convs] == [()] * 3 and not any(c.done for c in convs)
  convs, done = env.step(convs, [LESSON] * 3)
  assert done.shape == (3,) and done.dtype == bool and not done.any()
  for c in convs:
    assert [(t.role, t.is_agent) for t in c.turns] == [("teacher", True), ("student", False)]
    assert c.turns[0].text == LESSON and c.turns[1].text


def test_done_when_teacher_ends_no_reply_added():
  env = EducationEnv()
  convs = env.reset([_ctx(0), _ctx(1)])
  convs, done = env.step(convs, [f"Great work today! {END_OF_CONVERSATION}", LESSON])
  assert done.tolist() == [True, False]
  assert len(convs[0].turns) == 1 and len(convs[1].turns) == 2
  with pytest.raises(ValueError, match="already done"):
    env.step(convs, [LESSON, LESSON])


def test_done_when_student_ends():
  env = EducationEnv()
  convs = env.reset([_ctx(0)])
  convs, _ = env.step(convs, [LESSON])
  convs, done = env.step(convs, ["That's all for today, see you next time!"])  # wraps up without the marker
  assert done.tolist() == [True]
  assert convs[0].turns[-1].text.endswith(END_OF_CONVERSATION) and not convs[0].turns[-1].is_agent


def test_done_after_max_agent_turns_with_the_last_reply():
  env = EducationEnv(max_agent_turns=3)
  convs = env.reset([_ctx(0)])
  texts = [LESSON, "Imagine you are a falling apple in a story. What happens to you next?",
           "Let's try an experiment: drop two balls at your desk and measure which lands first."]
  for k, text in enumerate(texts):
    assert not convs[0].done
    convs, done = env.step(convs, [text])
    assert done.tolist() == [k == 2]
  assert convs[0].num_agent_turns == 3 and len(convs[0].turns) == 6 and not convs[0].turns[-1].is_agent


def test_reply_is_independent_of_batch_position_and_batch_mates():
  rng = np.random.default_rng(0)
  contexts = [_ctx(i, p, r) for i, (p, r) in enumerate(
      (p, r) for p in attributes.STUDENT_PREFERENCES for r in attributes.STUDENT_REACTIONS)]
  teacher = [LESSON, "What do you think gravity does to the Moon? Let's discuss it.",
             "Imagine you are an astronaut in a story on the Moon.", "Quick check: true or false, gravity pulls?"]
  env = EducationEnv(ScriptedStudent(seed=3))
  forward = env.reset(contexts)
  backward = env.reset(contexts[::-1])
  for step in range(4):
    texts = [teacher[(i + step) % 4] for i in range(len(contexts))]
    forward, _ = env.step(forward, texts)
    backward, _ = env.step(backward, texts[::-1])
  assert forward == backward[::-1]
  # Any subset in any order gets the same replies; another seed gives other replies somewhere.
  student = ScriptedStudent(seed=3)
  trimmed = [Conversation(c.context, c.turns[:-1]) for c in forward]
  expected = [c.turns[-1].text for c in forward]
  assert student.reply(trimmed) == expected
  perm = rng.permutation(len(trimmed))[:5]
  assert student.reply([trimmed[i] for i in perm]) == [expected[i] for i in perm]
  assert ScriptedStudent(seed=4).reply(trimmed) != expected


def test_clear_errors():
  env = EducationEnv()
  convs = env.reset([_ctx(0), _ctx(1)])
  with pytest.raises(ValueError, match="2 conversations but 1 agent turns"):
    env.step(convs, [LESSON])
  with pytest.raises(TypeError, match="not one string"):
    env.step(convs[:1], LESSON)
  with pytest.raises(TypeError, match="agent turn 1 is int"):
    env.step(convs, [LESSON, 3])
  with pytest.raises(ValueError, match="max_agent_turns"):
    EducationEnv(max_agent_turns=0)
  half = [convs[0].append(Turn("teacher", LESSON, True))]
  with pytest.raises(ValueError, match="already ends with a teacher turn"):
    env.step(half, [LESSON])
  with pytest.raises(ValueError, match="lacks 'student_preference'"):
    env.step([Conversation(Context("x", {"topic": "Gravity"}, {}))], [LESSON])
  with pytest.raises(ValueError, match="only to a teacher turn"):
    ScriptedStudent().reply(convs)


def test_empty_turn_is_allowed_and_read_as_saying_nothing():
  env = EducationEnv()
  convs, done = env.step(env.reset([_ctx(0)]), [""])
  assert not done[0] and convs[0].turns[0].text == ""
  assert convs[0].turns[1].text in ("Um... did you mean to say something?", "Sorry, I didn't catch that.",
                                    "Hello? Are you still there?")
  state, _ = env.student.state(convs[0])
  assert state.engagement < ScriptedStudent().state(env.step(env.reset([_ctx(0)]), [LESSON])[0][0])[0].engagement


def _run(env, ctx, texts):
  convs = env.reset([ctx])
  for text in texts:
    if convs[0].done:
      break
    convs, _ = env.step(convs, [text])
  return convs[0]


FREE = {  # free-form turns a learned policy might write, one per style
    "creative": "Imagine you are a tiny astronaut. In our story, every object with mass pulls on every other "
                "object. What do you do next?",
    "hands_on": "Let's try it: grab a pencil and an eraser, drop them together and observe. Gravity pulls "
                "every object with mass.",
    "interactive": "Why do you think the Moon stays in orbit around the Earth? What do you think gravity does?",
    "lecture": "Gravity is a force that pulls every object with mass toward every other object with mass. The "
               "more mass an object has, the stronger its pull, so the Earth keeps the Moon in orbit and the Sun "
               "keeps the Earth in orbit around it.",
}


@pytest.mark.parametrize("preference", list(FREE))
def test_student_reacts_to_free_text_style(preference):
  env = EducationEnv()
  ctx = _ctx(0, preference, "might_adapt")
  matched = env.student.state(_run(env, ctx, [FREE[preference]] * 1))[0]
  others = [env.student.state(_run(env, ctx, [FREE[s]]))[0] for s in FREE if s != preference]
  assert matched.matched == 1 and all(o.matched == 0 for o in others)
  assert all(matched.engagement > o.engagement and matched.understanding > o.understanding for o in others)


def test_asking_about_preference_gets_it_revealed_and_tell_reveals_unprompted():
  env = EducationEnv()
  conv = _run(env, _ctx(0, "hands_on", "rude"), ["Before we begin, how do you like to learn best?"])
  reply = conv.turns[-1].text.lower()
  assert any(w in reply for w in ("doing things", "hands-on", "build or test")), reply
  conv = _run(env, _ctx(1, "creative", "might_tell"), [FREE["lecture"]])
  assert "story" in conv.turns[-1].text.lower()


def test_disengaged_student_walks_out_of_a_mismatched_lesson():
  env = EducationEnv()
  conv = _run(env, _ctx(0, "creative", "disengaged"), [FREE["lecture"] + f" Fact {i}." for i in range(6)])
  assert conv.done and conv.turns[-1].text.endswith(END_OF_CONVERSATION) and conv.num_agent_turns < 6


def test_generator_contexts_work_in_the_env():
  records = generator.generate(8, seed=1)
  env = EducationEnv()
  convs = env.reset([convert.context_of(r, f"r{i}") for i, r in enumerate(records)])
  convs, done = env.step(convs, [r["conversation"][0]["text"] for r in records])
  assert len(convs) == 8 and not done.any()


def test_unknown_topic_and_free_wording_of_attributes():
  """Contexts from other data (topics outside our list, the paper's own attribute wording) still work."""
  ctx = Context("other-0", {"topic": "Quantum computing"},
                {"student_preference": "Prefers hands-on, experiential learning with real-world examples",
                 "student_reaction": "Might tell the teacher how they like to learn"})
  env = EducationEnv()
  convs, _ = env.step(env.reset([ctx]), ["Let's try an experiment: build a model of a quantum computing qubit."])
  state, _ = env.student.state(convs[0])
  assert state.matched == 1 and convs[0].turns[-1].text
  convs, _ = env.step(convs, ["Let me explain. In other words, quantum computing uses qubits. This means more."])
  state, intent = env.student.state(convs[0])
  assert state.matched == 1 and state.revealed and intent == "reveal"  # "might tell" reveals on a mismatch
