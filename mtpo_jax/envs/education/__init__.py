"""Education Dialogue (digest A9-A10): synthetic data, released-format validation, environment, student.

| module | contents |
|---|---|
| attributes.py | student/teacher preferences and reactions; teaching styles |
| topics.py (+ topics_stem.py, topics_humanities.py) | 80 topics with four facts each |
| cues.py | reading free text: teaching style, intents, degenerate turns |
| conduct.py | contempt read from sentence structure; text addressed to the judge |
| student.py / student_phrases.py | simulated student: hidden understanding and engagement, replies |
| teacher.py / teacher_phrases.py | scripted teacher of the generator |
| generator.py | records in the released JSON format, split files |
| schema.py | validation and `load_released` |
| convert.py | records <-> `types.Conversation` |
| env.py | `EducationEnv`, `ScriptedStudent` |

The judge is `mtpo_jax.oracles.rubric.RubricJudge`; docs/education_dialogue.md describes everything.
"""
