"""A small generated teacher-reply corpus: the foundation's default SFT data until Education Dialogue lands.

Each example maps (topic, teaching style, student request) to a teacher reply whose content depends on all
three, so a model must read its input to fit it. Deterministic given the seed.
"""

from __future__ import annotations

import random

TOPICS = {
    "photosynthesis": "plants turn light, water and carbon dioxide into sugar and oxygen",
    "newton's laws": "a force changes how an object moves, and every action has an equal reaction",
    "the water cycle": "water evaporates, forms clouds, falls as rain and flows back to the sea",
    "the french revolution": "the people of france overthrew the king and declared the rights of man",
    "supply and demand": "prices rise when many want a thing that few can supply",
    "neurons": "nerve cells pass electrical signals to each other across synapses",
    "volcanoes": "molten rock from deep underground escapes through openings in the crust",
    "the roman empire": "rome grew from a small city into an empire ruled by emperors",
    "metaphors": "a metaphor describes one thing as if it were another to show a likeness",
    "zeus": "zeus was the king of the greek gods and ruled from mount olympus",
    "the taj mahal": "an emperor built the taj mahal in agra as a tomb for his wife",
    "marie curie": "marie curie studied radioactivity and won two nobel prizes",
    "gravity": "gravity pulls every mass toward every other mass",
    "cells": "all living things are made of small units called cells",
    "democracy": "in a democracy the people choose their leaders by voting",
    "fractions": "a fraction names equal parts of a whole",
}
STYLES = {
    "lecture": "let me explain. {fact}. that is the key idea of {topic}.",
    "story": "imagine a story about {topic}. in it, {fact}. what do you think happens next?",
    "question": "good question. what do you already know about {topic}? here is a hint: {fact}.",
    "hands-on": "let us try an experiment on {topic}. watch closely and you will see that {fact}.",
}
REQUESTS = [
    "can you teach me about {topic}?",
    "i do not understand {topic}.",
    "what is {topic}?",
    "please explain {topic} again.",
    "why does {topic} matter?",
]


def generate(num_examples: int, seed: int = 0) -> list[tuple[str, str]]:
  """Returns (input, target) text pairs."""
  rng = random.Random(seed)
  topics, styles = sorted(TOPICS), sorted(STYLES)
  out = []
  for _ in range(num_examples):
    topic, style = rng.choice(topics), rng.choice(styles)
    request = rng.choice(REQUESTS).format(topic=topic)
    source = f"topic: {topic} | style: {style} | student: {request}"
    target = STYLES[style].format(topic=topic, fact=TOPICS[topic])
    out.append((source, target))
  return out
