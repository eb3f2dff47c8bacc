"""The 80 Education Dialogue topics and what the simulator and the judge know about each (digest A10).

Every topic has a category and four fact clauses, so teacher turns carry topic-specific content that a
language model must really learn. `content_words(topic)` is the topic's vocabulary (content words of its name
and facts): turns that use it "carry content" (cues.py).
"""

from __future__ import annotations

import dataclasses
import functools
import re

from mtpo_jax.envs.education.topics_humanities import HUMANITIES_TOPICS
from mtpo_jax.envs.education.topics_stem import STEM_TOPICS

CATEGORIES = ("science", "biology", "literature", "history", "landmarks", "people", "mythology", "economics")

# Stop words left out of topic vocabularies (common words are no evidence of topic content).
STOPWORDS = frozenset("""
a about after all also an and any are around as at be because been before being between both but by can could
did do does each even every few for from had has have he her here him his how however i if in into is it its
just like made make many may more most much my no not now of on once one only or other our out over own same
she should so some such than that the their them then there these they this those through to too two under up
us very was we were what when where which while who whom why will with would you your called used known first
four three become became until each every almost about during long later often still next since great
comes gives happens inside turn turns took make makes takes goes going look looks shown show shows think
thing things something give help helps want real world story game games time times way ways part parts work
works keep keeps another back down left right place know let lets try good new
""".split())

_WORD = re.compile(r"[a-z][a-z'-]*")


@dataclasses.dataclass(frozen=True)
class Topic:
  name: str
  category: str
  facts: tuple[str, ...]


TOPICS: dict[str, Topic] = {name: Topic(name, cat, facts) for name, cat, facts in STEM_TOPICS + HUMANITIES_TOPICS}
TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)

# Category-specific hands-on activities and creative framings, used by the scripted teacher's templates.
ACTIVITIES = {
    "science": ("set up a small experiment at your desk", "grab a few things from around the room and test it",
                "measure what happens and write down the results"),
    "biology": ("look at a real sample under a microscope", "observe a plant or an animal outside and take notes",
                "build a model out of clay and label each part"),
    "literature": ("write three sentences of your own that use it", "hunt for examples in a song you like",
                   "rewrite a boring sentence so it uses this device"),
    "history": ("look at a real primary source from the time", "build a timeline on the wall with sticky notes",
                "map the key places and trace how events spread"),
    "landmarks": ("build a small model of it from cardboard", "plan a real trip there and work out the route",
                  "measure our classroom and compare it with the real size"),
    "people": ("recreate one of their real experiments or projects", "solve a real problem the way they would",
               "build a timeline of their life with real photos"),
    "mythology": ("make a map of where the myth takes place", "compare the myth with a real event from history",
                  "build a museum display about it with real artefacts"),
    "economics": ("run a mini market with real prices in the classroom", "track real prices at a shop this week",
                  "work out a real budget for a class trip"),
}
CHARACTERS = {
    "science": ("a tiny particle", "a curious astronaut", "a raindrop"), "biology": ("a single cell",
    "a tiny explorer inside the body", "a seed"), "literature": ("a poet", "a detective reading clues",
    "a storyteller"), "history": ("a young reporter in that time", "a time traveller", "a messenger"),
    "landmarks": ("a traveller arriving there", "one of the builders", "a tour guide"),
    "people": ("their assistant", "a reporter interviewing them", "a friend from their childhood"),
    "mythology": ("a hero on a quest", "a traveller meeting the gods", "a storyteller by the fire"),
    "economics": ("a shop owner", "a young entrepreneur", "the mayor of a small town"),
}


def sentence(clause: str) -> str:
  """A fact clause as a sentence: capitalised first letter and a full stop."""
  return clause[:1].upper() + clause[1:] + "."


def words(text: str) -> list[str]:
  """Lower-case word tokens (letters, apostrophes and inner hyphens)."""
  return _WORD.findall(text.lower())


def lookup(name: str) -> Topic | None:
  """The Topic for a name, case-insensitively; None for topics we do not know (e.g. from other data)."""
  topic = TOPICS.get(name)
  if topic is None:
    topic = _lower_index().get(name.strip().lower())
  return topic


@functools.lru_cache(maxsize=None)
def _lower_index() -> dict[str, Topic]:
  return {name.lower(): t for name, t in TOPICS.items()}


@functools.lru_cache(maxsize=4096)
def content_words(name: str) -> frozenset[str]:
  """Content words of the topic's name and facts (only the name's words for an unknown topic)."""
  topic = lookup(name)
  text = name if topic is None else " ".join((topic.name,) + topic.facts)
  return frozenset(w for w in words(text) if len(w) >= 4 and w not in STOPWORDS)
