"""Wake phrases: checking what the TTS engines can say, and the phrases that sound close to one.

A wake-word model learns to reject what is near its phrase only if it hears it, so its negatives include
"adversarial" phrases built from the phrase's phonemes (espeak-ng's ASCII transcription, `espeak-ng -x`):
  - partial phrases: every shorter run of its words ("hey", "zoo"), halves of long words ("athe", "thena"),
    and the words in another order;
  - real words that sound close: each word swapped for the lexicon's nearest words by phoneme edit distance
    ("hey sue", "say zoo");
  - spelling variants: one letter changed, dropped or added, kept when espeak says it one or two phoneme
    edits away (substitutions and deletions of sounds, rendered by every engine, not only espeak).
A candidate that espeak pronounces exactly like the phrase ("hay zoo") is dropped: it is the phrase.
"""
from __future__ import annotations

import functools
import re
import subprocess

from kws_zoo.core.errors import ConfigError, EngineError
from kws_zoo.data.synthetic.corpus import DIGITS, GSC_V2_WORDS
from kws_zoo.data.synthetic.noise import FILLER_WORDS
import numpy as np

from kws_zoo.data.synthetic.tts import require_binary, tts_render

MAX_WORDS = 4
_ALLOWED = re.compile(r"^[a-z' -]+$")
_VOWELS = "aeiouy"
# Short, common words that are none of the corpora's: the rest of the "general speech" negatives.
EVERYDAY_WORDS = tuple("""
hello hi hey okay yeah sure thanks please sorry morning evening today tomorrow music light lights kitchen
door window phone call timer alarm weather news play pause next volume louder quiet coffee dinner lunch
water garden office computer television radio button switch turn open close start finish again maybe
really people friend family kids dog walk talk listen watch read write picture movie game party zone
soup shoe blue true who new view you do two through choose lose news juice room zoom too to
""".split())


def check_phrase(text: str) -> str:
    """The phrase, lower-cased with single spaces; ConfigError (one line) for what the engines cannot say."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the wake phrase is empty; give the words to detect, e.g. \"hey zoo\"")
    phrase = " ".join(text.lower().replace("\u2019", "'").split())
    if not re.search("[a-z]", phrase):
        raise ConfigError(f"the wake phrase {text!r} has no letters; give words, e.g. \"hey zoo\"")
    if re.search("[0-9]", phrase):
        raise ConfigError(f"the wake phrase {text!r} has digits; spell numbers out (\"two\", not \"2\"): "
                          "the TTS engines read digits differently")
    if not _ALLOWED.match(phrase):
        bad = "".join(sorted(set(re.sub(r"[a-z' -]", "", phrase))))
        raise ConfigError(f"the wake phrase {text!r} has characters the TTS engines cannot say: {bad!r}; "
                          "use letters, spaces, apostrophes and hyphens")
    words = phrase.replace("-", " ").split()
    if not all(re.search("[a-z]", w) for w in words):
        raise ConfigError(f"the wake phrase {text!r} has a word without letters")
    if len(words) > MAX_WORDS:
        raise ConfigError(f"the wake phrase {text!r} has {len(words)} words; at most {MAX_WORDS} fit a model's "
                          "one-second window")
    return phrase


def phrase_slug(phrase: str) -> str:
    """'hey zoo' -> 'hey_zoo': the label and folder name."""
    return re.sub(r"[^a-z]+", "_", phrase).strip("_")


@functools.lru_cache(maxsize=1)
def _lexicon() -> tuple[str, ...]:
    return tuple(sorted(set(FILLER_WORDS) | set(GSC_V2_WORDS) | set(DIGITS) | set(EVERYDAY_WORDS)))


def phonemes(texts, voice: str = "en-us") -> list[str]:
    """espeak-ng's ASCII phonemes of each text (stress marks removed), one espeak process for all."""
    texts = list(texts)
    if not texts:
        return []
    proc = subprocess.run([require_binary("espeak-ng"), "-q", "-x", "-v", voice, "--stdin"],
                          input="".join(f"{t}.\n" for t in texts).encode(), capture_output=True, timeout=120)
    lines = [line.strip() for line in proc.stdout.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != len(texts):
        raise EngineError(f"espeak-ng -x gave {len(lines)} transcriptions for {len(texts)} texts "
                          f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace')[-200:]}")
    return [re.sub(r"[',%=_]", "", line) for line in lines]


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _spelling_variants(word: str) -> set[str]:
    out = set()
    for i, c in enumerate(word):
        out.add(word[:i] + word[i + 1:])
        for v in _VOWELS if c in _VOWELS else "bdfgklmnprstvz":
            out.add(word[:i] + v + word[i + 1:])
    for i in range(len(word) + 1):
        for v in "aeiosnrl":
            out.add(word[:i] + v + word[i:])
    return {w for w in out if len(w) >= 2 and w != word}


def adversarial_phrases(phrase: str, per_word: int = 4, variants_per_word: int = 6) -> dict[str, str]:
    """{text: kind} of phrases that sound close to `phrase` but are not it (see the module docstring);
    kinds: 'partial', 'reordered', 'close_word', 'close_spelling'."""
    phrase = check_phrase(phrase)
    words = phrase.replace("-", " ").split()
    target = phonemes([phrase])[0]
    out: dict[str, str] = {}
    for n in range(1, len(words)):
        for i in range(len(words) - n + 1):
            out[" ".join(words[i:i + n])] = "partial"
    for word in words:  # halves of long words: "athe", "thena"
        if len(word) >= 5:
            out.setdefault(word[:len(word) // 2 + 1], "partial")
            out.setdefault(word[(len(word) - 1) // 2:], "partial")
    if len(words) > 1:
        out[" ".join(reversed(words))] = "reordered"
    lexicon = _lexicon()
    lex_ph = dict(zip(lexicon, phonemes(lexicon)))
    word_ph = phonemes(words)
    for i, (word, ph) in enumerate(zip(words, word_ph)):
        close = sorted((edit_distance(ph, p), w) for w, p in lex_ph.items() if p != ph and w != word)
        for _, w in close[:per_word]:
            out.setdefault(" ".join(words[:i] + [w] + words[i + 1:]), "close_word")
        variants = sorted(_spelling_variants(word))
        spoken = dict(zip(variants, phonemes(variants)))
        ranked = sorted((edit_distance(ph, p), v) for v, p in spoken.items() if 1 <= edit_distance(ph, p) <= 2)
        for _, v in ranked[:variants_per_word]:
            out.setdefault(" ".join(words[:i] + [v] + words[i + 1:]), "close_spelling")
    texts = list(out)
    return {t: out[t] for t, p in zip(texts, phonemes(texts)) if p != target and t != phrase}


def general_words(phrase: str) -> tuple[str, ...]:
    """The lexicon's words, minus any that espeak says like one of the phrase's words or the phrase."""
    phrase = check_phrase(phrase)
    avoid = set(phonemes([phrase, *phrase.replace("-", " ").split()]))
    lexicon = _lexicon()
    return tuple(w for w, p in zip(lexicon, phonemes(lexicon)) if p not in avoid)


def spoken_seconds(phrase: str, voice: str = "en-us") -> float:
    """How long espeak-ng says the phrase at its normal pace: the span of 10 ms frames within 40 dB of the loudest."""
    audio = tts_render("espeak", voice, check_phrase(phrase))
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64)
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-12
    active = np.flatnonzero(rms > rms.max() * 10 ** (-40 / 20))
    return float((active[-1] + 1 - active[0]) * 0.01) if active.size else 0.0


def check_fits(phrase: str, window_s: float = 1.0, speed_up: float = 1.25) -> float:
    """The phrase's spoken length; ConfigError if even `speed_up` times faster it overruns the model's window."""
    seconds = spoken_seconds(phrase)
    if seconds > window_s * speed_up * 0.92:
        raise ConfigError(f"the wake phrase {phrase!r} takes {seconds:.2f} s at a normal pace; the model's window is "
                          f"{window_s:g} s: choose a shorter phrase")
    return seconds
