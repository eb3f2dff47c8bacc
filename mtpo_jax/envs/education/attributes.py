"""Education Dialogue attribute lists: learning/teaching preferences and reactions (papers/digest.md A10).

The paper's exact strings (its App. C.1) are not reproduced in the digest, so these are our own wordings of the
same categories: 4 student learning preferences, 6 student reactions, 4 teacher preferences and 5 teacher
reactions. Each attribute has a short key (used by the simulator) and a sentence (written to the data, as the
released `background_info` does). Topics live in `topics.py`.

Teaching styles are the common currency: a student preference names the style that suits the student, a teacher
preference names the style the teacher falls back on, and `cues.py` detects which style a free-form turn uses.
"""

from __future__ import annotations

# Teaching styles a turn can be detected as (cues.py). "assessment" is formative assessment: quizzes and checks.
STYLES = ("interactive", "lecture", "hands_on", "creative", "assessment")

STUDENT_PREFERENCES = {
    "interactive": "learns best through interactive learning: class discussions and asking questions",
    "lecture": "learns best through lecture-based learning: listening to clear, structured explanations",
    "hands_on": "learns best through hands-on activities and real-world applications",
    "creative": "learns best through creative learning: storytelling, role-play and gamification",
}

STUDENT_REACTIONS = {
    "rude": "gets rude and dismissive if the lesson does not match how they like to learn",
    "disengaged": "gets disengaged and stops paying attention if the lesson does not match how they like to learn",
    "frustrated": "gets frustrated if the lesson does not match how they like to learn",
    "anxious": "gets anxious and unsure of themselves if the lesson does not match how they like to learn",
    "might_adapt": "might adapt to the teacher's style even if it is not how they like to learn",
    "might_tell": "might tell the teacher how they like to learn if the lesson does not match it",
}

TEACHER_PREFERENCES = {
    "lecture": "prefers lecture-based teaching: explaining the material in a clear, structured way",
    "interactive": "prefers interactive, inquiry-based teaching: asking questions and leading discussions",
    "hands_on": "prefers experiential, hands-on teaching: activities, experiments and real-world examples",
    "assessment": "prefers formative assessment: frequent quizzes and checks for understanding",
}

TEACHER_REACTIONS = {
    "frustrated": "gets frustrated if the student does not follow the lesson",
    "blames": "blames the student if the lesson is not going well",
    "gives_up": "gives up if the student does not engage",
    "might_adapt": "might adapt their teaching style to the student",
    "might_insist": "might insist on their own teaching style",
}

# Style a teacher preference teaches in (keys coincide with STYLES).
TEACHER_STYLE = {key: key for key in TEACHER_PREFERENCES}

# How well a detected turn style suits a student preference: 1 on a match, partial credit for near misses.
PARTIAL_MATCH = {("interactive", "assessment"): 0.5}

# Keywords that map an unknown preference sentence (e.g. the paper's own wording) onto a style.
_STYLE_WORDS = (
    ("creative", ("story", "storytelling", "creative", "gamif", "game", "role-play", "imagin")),
    ("hands_on", ("hands-on", "hands on", "real-world", "real world", "experiential", "experiment", "practical")),
    ("assessment", ("assessment", "quiz", "check for understanding")),
    ("lecture", ("lecture", "explanation", "listening")),
    ("interactive", ("interactive", "discussion", "inquiry", "asking questions", "question")),
)
_REACTION_WORDS = (
    ("might_tell", ("tell",)), ("might_adapt", ("adapt",)), ("rude", ("rude",)), ("disengaged", ("disengag",)),
    ("frustrated", ("frustrat",)), ("anxious", ("anxi",)),
)
_TEACHER_REACTION_WORDS = (
    ("might_insist", ("insist",)), ("might_adapt", ("adapt",)), ("gives_up", ("give up", "gives up")),
    ("blames", ("blame",)), ("frustrated", ("frustrat",)),
)


def match_strength(style: str | None, preference: str) -> float:
  """How well a turn in `style` suits a student whose preferred style is `preference` (0, 0.5 or 1)."""
  if style is None:
    return 0.0
  if style == preference:
    return 1.0
  return PARTIAL_MATCH.get((preference, style), 0.0)


def _key_of(text: str, table: dict[str, str], words: tuple, default: str) -> str:
  for key, sentence in table.items():
    if text == key or text == sentence:
      return key
  low = text.lower()
  for key, needles in words:
    if key in table and any(n in low for n in needles):
      return key
  return default


def student_style_of(preference: str) -> str:
  """Style key of a student preference given as a key, one of our sentences, or any free wording."""
  return _key_of(preference, STUDENT_PREFERENCES, _STYLE_WORDS, "interactive")


def teacher_style_of(preference: str) -> str:
  """Style key of a teacher preference given as a key, one of our sentences, or any free wording."""
  return _key_of(preference, TEACHER_PREFERENCES, _STYLE_WORDS, "lecture")


def student_reaction_of(reaction: str) -> str:
  """Reaction key of a student reaction given as a key, one of our sentences, or any free wording."""
  return _key_of(reaction, STUDENT_REACTIONS, _REACTION_WORDS, "might_adapt")


def teacher_reaction_of(reaction: str) -> str:
  """Reaction key of a teacher reaction given as a key, one of our sentences, or any free wording."""
  return _key_of(reaction, TEACHER_REACTIONS, _TEACHER_REACTION_WORDS, "might_insist")
