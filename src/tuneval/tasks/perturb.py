"""HELM's perturbations of an example's input: invariance (robustness) and counterfactual (fairness).

Pure functions of (text, random generator), as HELM's `augmentations/` (Liang et al. 2022, sec. 4.5
and 4.6; stanford-crfm/helm), written anew:

robustness (meaning kept, the answer must not change):
  typos          each letter, with `prob`, becomes a key next to it on a QWERTY keyboard
  misspellings   each word with a common misspelling becomes one, with `prob` (Wikipedia's list)
  lowercase      the whole text lower-cased
  contraction    "she is" -> "she's" (followed by a space, as HELM)     expansion: the reverse
  extra_space    every run of spaces becomes 1..`max_spaces` spaces
  mild_mix       HELM's canonical robustness perturbation: lowercase, contraction, misspellings
                 (0.1), extra_space (3), in that order
fairness (a counterfactual: who the text is about, or how it is written, changes):
  gender         male terms and pronouns -> female (Garg 2018, Bolukbasi 2016, Lauscher 2022), `prob`
  person_name    white-American first names -> black-American ones of the same gender (Caliskan 2017)
  dialect        Standard American English words -> African American English variants (Ziems 2022)

Deterministic: each example's generator is seeded from (seed, perturbation, example key) as a string,
which Python's `random` hashes with SHA-512, so the same seed gives the same text on any machine and
any Python 3. The word lists are data (tasks/perturb_data/, SOURCES.md names each source and licence).

Where tuneval differs from HELM's code (docs/guides/scorecard.md says it too): word swaps
(gender, dialect) match a word at the very start or end of a text (HELM's pattern needs a character
on both sides, and misses back-to-back matches); misspellings come from the lower-case entries and
follow the case of the replaced word; one pass replaces every word, so a swapped word is never
swapped again.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuneval.errors import TunevalError

DATA = Path(__file__).parent / "perturb_data"

# Keys one step away on a QWERTY keyboard, letters only (HELM's typos map).
KEYBOARD = {
    "q": "was", "w": "qesad", "e": "wsdfr", "r": "edfgt", "t": "rfghy", "y": "tghju", "u": "yhjki", "i": "ujklo",
    "o": "iklp", "p": "ol", "a": "qwsz", "s": "weadzx", "d": "erfcxs", "f": "rtgvcd", "g": "tyhbvf", "h": "yujnbg",
    "j": "uikmnh", "k": "iolmj", "l": "opk", "z": "asx", "x": "sdcz", "c": "dfvx", "v": "fgbc", "b": "ghnv",
    "n": "hjmb", "m": "jkn",
}

CONTRACTIONS = {  # contraction -> expansion (HELM's map, after NL-Augmenter)
    "ain't": "is not", "aren't": "are not", "can't": "cannot", "can't've": "cannot have", "could've": "could have",
    "couldn't": "could not", "didn't": "did not", "doesn't": "does not", "don't": "do not", "hadn't": "had not",
    "hasn't": "has not", "haven't": "have not", "he'd": "he would", "he'd've": "he would have", "he'll": "he will",
    "he's": "he is", "how'd": "how did", "how'd'y": "how do you", "how'll": "how will", "how's": "how is",
    "i'd": "i would", "i'll": "i will", "i'm": "i am", "i've": "i have", "isn't": "is not", "it'd": "it would",
    "it'll": "it will", "it's": "it is", "ma'am": "madam", "might've": "might have", "mightn't": "might not",
    "must've": "must have", "mustn't": "must not", "needn't": "need not", "oughtn't": "ought not",
    "shan't": "shall not", "she'd": "she would", "she'll": "she will", "she's": "she is", "should've": "should have",
    "shouldn't": "should not", "that'd": "that would", "that's": "that is", "there'd": "there would",
    "there's": "there is", "they'd": "they would", "they'll": "they will", "they're": "they are",
    "they've": "they have", "wasn't": "was not", "we'd": "we would", "we'll": "we will", "we're": "we are",
    "we've": "we have", "weren't": "were not", "what're": "what are", "what's": "what is", "when's": "when is",
    "where'd": "where did", "where's": "where is", "where've": "where have", "who'll": "who will", "who's": "who is",
    "who've": "who have", "why's": "why is", "won't": "will not", "would've": "would have",
    "wouldn't": "would not", "you'd": "you would", "you'd've": "you would have", "you'll": "you will",
    "you're": "you are", "you've": "you have",
}
# Several contractions expand alike ("ain't", "isn't": "is not"); contracting takes the last, as HELM's reversed dict.
EXPANSIONS = {v: k for k, v in CONTRACTIONS.items()}


def match_case(source: str, target: str) -> str:
    """`target` in the case of `source`: all lower, all upper, capitalised, or as it is (HELM's match_case,
    looking at letters only, so that "DON'T" counts as upper case)."""
    letters = [c for c in source if c.isalpha()]
    if all(c.islower() for c in letters):
        return target.lower()
    if all(c.isupper() for c in letters):
        return target.upper()
    if source and source[0].isupper():
        return target.capitalize()
    return target


@lru_cache(maxsize=None)
def load(name: str) -> Any:
    """A shipped word list (tasks/perturb_data/NAME.json)."""
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _words_pattern(words, edge: str = r"\w") -> re.Pattern:
    """Any of `words` as a whole word (longest first), case-insensitive; `edge`: what may not touch it."""
    alts = "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(rf"(?<!{edge})({alts})(?!{edge})", re.IGNORECASE)


# ---- robustness --------------------------------------------------------------------------------

def typos(text: str, rng: random.Random, prob: float = 0.1) -> str:
    out = []
    for ch in text:
        low = ch.lower()
        if low in KEYBOARD and rng.random() < prob:
            new = rng.choice(KEYBOARD[low])
            out.append(new.upper() if ch != low else new)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=None)
def _misspelling_pattern() -> re.Pattern:
    return re.compile(r"\b(" + "|".join(map(re.escape, sorted(load("misspellings"), key=lambda w: (-len(w), w))))
                      + r")\b", re.IGNORECASE)


def misspellings(text: str, rng: random.Random, prob: float = 0.05) -> str:
    table = load("misspellings")

    def swap(m: re.Match) -> str:
        word = m.group(1)
        return match_case(word, rng.choice(table[word.lower()])) if rng.random() < prob else word
    return _misspelling_pattern().sub(swap, text)


def lowercase(text: str, rng: random.Random) -> str:
    return text.lower()


_EXPANSION_RE = re.compile(r"\b(" + "|".join(map(re.escape, EXPANSIONS)) + r")\b ", re.IGNORECASE)
_CONTRACTION_RE = re.compile(r"\b(" + "|".join(map(re.escape, CONTRACTIONS)) + r")\b", re.IGNORECASE)


def contraction(text: str, rng: random.Random) -> str:
    """Expanded forms followed by a space become contractions ("she is " -> "she's ")."""
    return _EXPANSION_RE.sub(lambda m: match_case(m.group(1), EXPANSIONS[m.group(1).lower()]) + " ", text)


def expansion(text: str, rng: random.Random) -> str:
    return _CONTRACTION_RE.sub(lambda m: match_case(m.group(1), CONTRACTIONS[m.group(1).lower()]), text)


def extra_space(text: str, rng: random.Random, max_spaces: int = 3) -> str:
    return re.sub(r" +", lambda _: " " * rng.randint(1, max_spaces), text)


def mild_mix(text: str, rng: random.Random) -> str:
    text = contraction(lowercase(text, rng), rng)
    return extra_space(misspellings(text, rng, prob=0.1), rng, max_spaces=3)


# ---- fairness ----------------------------------------------------------------------------------

def _swap(text: str, rng: random.Random, table: dict[str, list[str]], prob: float, edge: str = r"\w") -> str:
    """Each whole word of `table` (any case), with `prob`, becomes one of its variants in its case."""
    if not table:
        return text

    def sub(m: re.Match) -> str:
        word = m.group(1)
        return match_case(word, rng.choice(table[word.lower()])) if rng.uniform(0, 1) < prob else word
    return _cached_pattern(tuple(sorted(table)), edge).sub(sub, text)


@lru_cache(maxsize=64)
def _cached_pattern(words: tuple[str, ...], edge: str) -> re.Pattern:
    return _words_pattern(words, edge)


@lru_cache(maxsize=None)
def gender_table(source: str = "male", target: str = "female", mode: str = "both") -> dict[str, list[str]]:
    """source word -> [target word] from HELM's term and pronoun triples (the first pair of a word wins)."""
    data = load("gender_terms")
    cols = data["columns"]
    if source not in cols or target not in cols:
        raise TunevalError(f"gender perturbation: classes are {', '.join(cols)}, got {source} -> {target}")
    modes = {"terms": ["terms"], "pronouns": ["pronouns"], "both": ["terms", "pronouns"]}[mode]
    table: dict[str, list[str]] = {}
    for m in modes:
        for row in data[m]:
            table.setdefault(row[cols.index(source)], [row[cols.index(target)]])
    return table


def gender(text: str, rng: random.Random, prob: float = 1.0, source: str = "male", target: str = "female",
           mode: str = "both") -> str:
    return _swap(text, rng, gender_table(source, target, mode), prob)


def dialect(text: str, rng: random.Random, prob: float = 1.0, mapping_file: str | None = None) -> str:
    table = load("sae_to_aae") if mapping_file is None else json.loads(Path(mapping_file).read_text(encoding="utf-8"))
    return _swap(text, rng, {k.lower(): v for k, v in table.items()}, prob, edge=r"[\w-]")


def person_name(text: str, rng: random.Random, prob: float = 1.0, source: str = "white_american",
                target: str = "black_american", state: dict | None = None) -> str:
    """First names of the `source` group -> names of the `target` group, of the same gender; one name
    becomes the same new name everywhere in the example (`state` carries the choices across fields)."""
    names = load("first_names")
    if source not in names or target not in names:
        raise TunevalError(f"person_name perturbation: groups are {', '.join(names)}, got {source} -> {target}")
    gender_of = {n: g for g, ns in names[source].items() for n in ns}
    state = {} if state is None else state
    mapped, skipped = state.setdefault("mapped", {}), state.setdefault("skipped", set())
    out = []
    for token in re.split(r"(\W)", text):
        low = token.lower()
        if low in gender_of and low not in mapped and low not in skipped:
            if rng.uniform(0, 1) < prob:
                mapped[low] = rng.choice(names[target][gender_of[low]])
            else:
                skipped.add(low)
        out.append(match_case(token, mapped[low]) if low in mapped else token)
    return "".join(out)


# ---- the catalogue -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Perturbation:
    """One named perturbation with its settings: `family` robustness or fairness."""

    name: str
    family: str
    fn: Callable[..., str]
    params: dict[str, Any] = field(default_factory=dict)

    def rng(self, seed: int, key: Any) -> random.Random:
        return random.Random(f"{seed}:{self.name}:{key}")

    def __call__(self, text: str, seed: int = 0, key: Any = "") -> str:
        return self.perturb_fields({"text": text}, ["text"], seed, key)["text"]

    def perturb_fields(self, doc: dict[str, Any], fields: list[str], seed: int, key: Any) -> dict[str, Any]:
        """A copy of `doc` with its text `fields` perturbed, in the order given, from one generator."""
        rng, out = self.rng(seed, key), dict(doc)
        extra = {"state": {}} if self.fn is person_name else {}
        for name in fields:
            if isinstance(out.get(name), str):
                out[name] = self.fn(out[name], rng, **self.params, **extra)
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, **self.params}


ROBUSTNESS = (
    Perturbation("typos", "robustness", typos, {"prob": 0.1}),
    Perturbation("misspellings", "robustness", misspellings, {"prob": 0.05}),
    Perturbation("lowercase", "robustness", lowercase),
    Perturbation("contraction", "robustness", contraction),
    Perturbation("expansion", "robustness", expansion),
    Perturbation("extra_space", "robustness", extra_space, {"max_spaces": 3}),
    Perturbation("mild_mix", "robustness", mild_mix),
)
FAIRNESS = (
    Perturbation("gender", "fairness", gender, {"prob": 1.0, "source": "male", "target": "female", "mode": "both"}),
    Perturbation("person_name", "fairness", person_name,
                 {"prob": 1.0, "source": "white_american", "target": "black_american"}),
    Perturbation("dialect", "fairness", dialect, {"prob": 1.0}),
)
PERTURBATIONS = {p.name: p for p in (*ROBUSTNESS, *FAIRNESS)}


def get(name: str) -> Perturbation:
    if name not in PERTURBATIONS:
        raise TunevalError(f"unknown perturbation '{name}' (known: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]
