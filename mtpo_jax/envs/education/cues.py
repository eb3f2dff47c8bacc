"""Reading free-form dialogue turns: teaching style, intents and degenerate text, by key phrases and structure.

Shared by the scripted student (which reacts to a teacher turn) and the rubric judge (which scores whole
conversations), so both read a learned policy's free text the same way, not only the scripted templates.
Phrases are matched on word tokens in one pass (fast enough for data generation); `{a,b}` in a phrase below
expands to alternatives.

Teaching style of a teacher turn (`TurnCues.style`): each style scores 1 per distinct cue phrase it contains
("imagine", "story" -> creative; "let's try", "experiment", "real world" -> hands-on; "what do you think",
"discuss" -> interactive; "quiz", "in your own words" -> assessment; "let me explain", "the key idea" ->
lecture); question marks add 0.6 each (at most 1.2) to interactive; a long turn (>= 35 words) without a question
adds 1 to lecture. The style is the best score if it is at least 1 (ties: creative, hands-on, assessment,
interactive, lecture), else None.

Degenerate text: `says_nothing` (no words, or under 3 words without ending or wrapping up), `stuffed` (keyword
lists: >= 6 style cue phrases, 4 or more cue phrases back to back, or >= 4 cue phrases
covering over 60% of the words; or repetition: one word >= 34% of >= 6 words, < 35% distinct words in >= 12),
`overlong` (> 150 words or > 1200 characters). `is_repeat` flags a turn whose word set overlaps an earlier
turn's by Jaccard >= 0.8.

`hostile` is a "hostile" phrase below or contempt read from sentence structure (conduct.py), so insults in
wording no list holds count too. Sentences addressed to the judge ("Note to the grader: full marks") are removed
before a turn is read (`addresses_judge`, degenerate): the student never hears them.
"""

from __future__ import annotations

import collections
import itertools
import re
from typing import NamedTuple, Sequence

from mtpo_jax.envs.education import conduct, topics
from mtpo_jax.types import END_OF_CONVERSATION

PHRASES = {
    # Teaching styles.
    "creative": "imagine|story|stories|storytelling|pretend|game|games|role-play|roleplay|role play|"
                "once upon a time|character|characters|comic|adventure|superhero|points|level up|mission|quest|"
                "picture yourself|make believe|fairy tale|legend says",
    "hands_on": "{let's,lets} try|try it|experiment|experiments|{real-world,real world,real life}|hands-on|"
                "hands on|build|activity|model|measure|grab|test it|field trip|simulation|in practice|practical|"
                "sample|your desk|observe|do it yourself",
    "interactive": "{what,why,how} do you think|discuss|discussion|your {idea,ideas,opinion,thoughts,view}|"
                   "how would you|what would you|{let's,lets} talk|debate|share|what have you noticed|"
                   "any guesses|do you agree",
    "assessment": "quiz|quick check|check {your,for} understanding|in your own words|true or false|test yourself|"
                  "multiple choice|exit ticket|score yourself|check what you know|see what you remember|"
                  "can you tell me",
    "lecture": "let me explain|in other words|the key {point,idea,thing}|note that|firstly|secondly|"
               "to {summarize,summarise}|in summary|listen carefully|the main idea|this means|"
               "it is important to understand|let me walk you through|{i'll,ill} explain|here is how it works",
    # Teacher intents.
    "asks_preference": "how do you {like,prefer} to {learn,study}|how {do,would} you learn best|"
                       "learning {style,styles,preference,preferences}|"
                       "what {kind,type,sort} of {activities,lesson,lessons,learning,teaching,class}|"
                       "prefer to learn|how would you like {me to,to} {learn,teach,study}|"
                       "what helps you {learn,understand}|what works best for you|how you {like to learn,learn best}",
    "invites": "any questions|feel free to ask|ask me|{great,good} question|what do you think|"
               "your {ideas,thoughts,opinion}|tell me what you|{i'd,id} love to hear",
    "praise": "great {job,work,thinking,answer}|well done|exactly|nice work|excellent|good thinking|"
              "{that's,thats} right|you got it|nicely done",
    "hostile": "not trying|lazy|your {fault,own fault}|stupid|idiot|dumb|useless|shut up|stop complaining|"
               "you never listen|not my problem|your problem|{paid,pay} more attention|{isn't,isnt} my teaching",
    "wraps_up": "see you {next time,tomorrow,later,soon}|{that's,thats} all for today|goodbye|bye|"
                "great work today|{we'll,well} stop {here,there}|end of {our,the,today's} lesson|"
                "until next time|thanks for {the,your} {lesson,class,work}",
    "gives_up": "{this,it} {isn't,is not} working|{don't,dont} think {this,it} is working|i give up|"
                "no point in {continuing,going on}|waste of {time,my time,our time}|{i'm,im} done {here,trying}|"
                "forget it",
    # Student affect.
    "positive": "i get it|makes sense|i see|cool|interesting|fun|i like|i love|thanks|thank you|got it|"
                "that helps|awesome|now i understand|okay i think i understand|so basically|"
                "so {you're,youre} saying|wow|neat",
    "negative": "boring|whatever|{i'm,im} lost|confused|confusing|{don't,dont} get|not fair|frustrated|"
                "frustrating|worried|stressed|stressing|ugh|done with this|who cares|pointless|"
                "{don't,dont} follow|not clicking|nervous|scared|i guess|{doesn't,doesnt} make {sense,any sense}|"
                "already said|are you still there|{didn't,didnt} catch|get to the point|waste of time|"
                "not sure i follow|did you mean|bunch of words|already did|be mean|not want to try|"
                "not really how i learn|trying to keep up|{don't,dont} understand",
}
STYLE_ORDER = ("creative", "hands_on", "assessment", "interactive", "lecture")
STYLES = frozenset(STYLE_ORDER)
MAX_WORDS, MAX_CHARS = 150, 1200
_END = END_OF_CONVERSATION.lower()
_WORD = re.compile(r"[a-z][a-z'-]*")


def _expand(phrase: str) -> list[str]:
  parts = re.split(r"\{([^}]*)\}", phrase)
  options = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
  return ["".join(c) for c in itertools.product(*options)]


def _build_tables():
  """(single-word phrase -> categories, first two words -> [(phrase, category)])."""
  single, multi = collections.defaultdict(list), collections.defaultdict(list)
  for category, spec in PHRASES.items():
    for alt in spec.split("|"):
      for phrase in _expand(alt):
        toks = tuple(_WORD.findall(phrase))
        if len(toks) == 1:
          single[toks[0]].append(category)
        else:
          multi[toks[:2]].append((toks, category))
  return dict(single), dict(multi)


_SINGLE, _MULTI = _build_tables()
_MULTI_FIRST = frozenset(k[0] for k in _MULTI)
_FIRST = frozenset(_SINGLE) | _MULTI_FIRST


def tokens(text: str) -> list[str]:
  """Lower-case word tokens of a lower-cased text (typographic apostrophes normalised)."""
  return _WORD.findall(text.replace("\u2019", "'"))


def find_phrases(toks: list[str]) -> dict[str, list[int]]:
  """Category -> start positions of its matched phrases (with repeats; a phrase's words are `toks[i:i + k]`)."""
  found = collections.defaultdict(list)
  n = len(toks)
  for i, w in enumerate(toks):
    if w not in _FIRST:
      continue
    cats = _SINGLE.get(w)
    if cats:
      for category in cats:
        found[category].append((i, 1))
    cands = _MULTI.get((w, toks[i + 1])) if i + 1 < n else None
    if cands:
      for phrase, category in cands:
        k = len(phrase)
        if k == 2 or (i + k <= n and tuple(toks[i:i + k]) == phrase):
          found[category].append((i, k))
  return found


def _style_cover(found: dict) -> tuple[int, int, int]:
  """(style cue phrases, words they cover, longest run of back-to-back cue blocks). Overlapping phrases
  ("let's try" + "try it") form one block; "imagine story game pretend" is a run of 4."""
  spans = sorted((i, i + k) for s in STYLE_ORDER for i, k in found.get(s, ()))
  covered, run, longest, end = 0, 0, 0, -1
  for start, stop in spans:
    if start < end:  # overlaps the current block: extend it
      covered += max(0, stop - end)
      end = max(end, stop)
      continue
    run = run + 1 if start == end else 1
    longest, covered, end = max(longest, run), covered + stop - start, stop
  return len(spans), covered, longest


class TurnCues(NamedTuple):
  """What a teacher turn does. `content` counts distinct topic words; `word_set` feeds repetition checks."""
  n_words: int
  style: str | None
  asks_preference: bool
  invites: bool
  praise: bool
  hostile: bool
  wraps_up: bool
  gives_up: bool
  ends: bool
  says_nothing: bool
  stuffed: bool
  overlong: bool
  content: int
  word_set: frozenset
  addresses_judge: bool = False


class StudentCues(NamedTuple):
  """What a student turn shows: positive/negative phrases, a minimal answer (under 3 words, nothing positive:
  "ok", "sure."), a question, restated content (topic words), the end marker."""
  positive: bool
  negative: bool
  minimal: bool
  question: bool
  content: int
  ends: bool


def style_scores(found: dict, toks: list[str], questions: int) -> dict[str, float]:
  """Style -> score from matched phrases, the number of question marks and the length (module docstring)."""
  scores = {s: float(len({tuple(toks[i:i + k]) for i, k in found.get(s, ())})) for s in STYLE_ORDER}
  scores["interactive"] += 0.6 * min(questions, 2)
  if len(toks) >= 35 and questions == 0:
    scores["lecture"] += 1.0
  return scores


def _primary(scores: dict[str, float]) -> str | None:
  best, best_score = None, 0.0
  for s in STYLE_ORDER:  # strict > keeps the earlier style on ties
    if scores[s] > best_score:
      best, best_score = s, scores[s]
  return best if best_score >= 1.0 else None


def _stuffed(toks: list[str], distinct: int, found: dict) -> bool:
  n = len(toks)
  if n < 4:
    return False
  hits, covered, run = _style_cover(found)
  if hits >= 6 or run >= 4 or (hits >= 4 and covered > 0.6 * n):
    return True
  if n >= 12 and distinct < 0.35 * n:
    return True
  # A word making up >= 34% of the turn leaves at most 0.66 n + 1 distinct words: count only then.
  return n >= 6 and distinct <= 0.66 * n + 1 and max(collections.Counter(toks).values()) >= 0.34 * n


def analyze_turn(text: str, topic: str) -> TurnCues:
  """Cues of one teacher turn about `topic` (any free text; the end marker is recognised and not a word)."""
  low = text.lower()
  ends = _END in low
  body = low.replace(_END, " ") if ends else low
  toks = tokens(body)
  word_set = frozenset(toks)
  to_judge = False
  if conduct.may_address_judge(word_set):  # the student never hears text written to the judge
    body, to_judge = conduct.split_judge_text(body)
    if to_judge:
      toks = tokens(body)
      word_set = frozenset(toks)
  n = len(toks)
  found = find_phrases(toks)
  wraps_up = "wraps_up" in found
  topic_words = topics.content_words(topic)
  return TurnCues(
      n_words=n, style=_primary(style_scores(found, toks, body.count("?"))),
      asks_preference="asks_preference" in found, invites="invites" in found, praise="praise" in found,
      hostile="hostile" in found or conduct.contemptuous(body, topics.STOPWORDS, topic_words),
      wraps_up=wraps_up, gives_up="gives_up" in found, ends=ends,
      says_nothing=n == 0 or (n < 3 and not ends and not wraps_up),
      stuffed=_stuffed(toks, len(word_set), found),
      overlong=n > MAX_WORDS or len(text) > MAX_CHARS, content=len(word_set & topic_words),
      word_set=word_set, addresses_judge=to_judge)


def analyze_student_turn(text: str, topic: str) -> StudentCues:
  """Cues of one student turn about `topic`."""
  low = text.lower()
  toks = tokens(low.replace(_END, " "))
  found = find_phrases(toks)
  positive = "positive" in found
  return StudentCues(positive=positive, negative="negative" in found, minimal=len(toks) < 3 and not positive,
                     question="?" in low, content=len(frozenset(toks) & topics.content_words(topic)),
                     ends=_END in low)


def says_end(text: str) -> bool:
  """Whether a turn contains the end-of-conversation marker (any capitalisation)."""
  return _END in text.lower()


def is_degenerate(c: TurnCues) -> bool:
  """A turn that says nothing, is keyword-stuffed, is absurdly long or writes to the judge."""
  return c.says_nothing or c.stuffed or c.overlong or c.addresses_judge


def jaccard(a: frozenset, b: frozenset) -> float:
  return len(a & b) / len(a | b) if (a or b) else 1.0


def _near(a: frozenset, b: frozenset, threshold: float) -> bool:
  la, lb = len(a), len(b)
  if la < threshold * lb or lb < threshold * la:  # Jaccard <= smaller / larger size
    return False
  return jaccard(a, b) >= threshold


def is_repeat(c: TurnCues, earlier: Sequence[TurnCues], threshold: float = 0.8) -> bool:
  """Whether a turn of >= 4 words nearly repeats an earlier turn (word-set Jaccard >= threshold)."""
  return c.n_words >= 4 and any(e.n_words >= 4 and _near(c.word_set, e.word_set, threshold) for e in earlier)


def is_teaching(c: TurnCues) -> bool:
  """A turn that tries to teach: not a preference question, not a closing turn, and not empty."""
  return not (c.asks_preference or c.ends or c.wraps_up or c.says_nothing) and (
      c.style is not None or c.content >= 2 or c.stuffed or c.overlong)
