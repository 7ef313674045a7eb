"""Wake phrases: what the engines can say, and the close-sounding negatives built from a phrase's phonemes."""
import pytest

from kws_zoo.core.errors import ConfigError
from kws_zoo.data.synthetic.phrases import (adversarial_phrases, check_fits, check_phrase, edit_distance,
                                            general_words, phonemes, phrase_slug)


@pytest.mark.parametrize("text, problem", [
    ("", "empty"), ("   ", "empty"), ("?!...", "no letters"), ("hey 2", "digits"), ("hey zoo#", "'#'"),
    ("hey ☃ zoo", "characters"), ("one two three four five", "at most"),
])
def test_check_phrase_refuses_what_the_engines_cannot_say(text, problem):
    with pytest.raises(ConfigError, match=problem):
        check_phrase(text)


def test_check_phrase_normalises_case_and_spaces():
    assert check_phrase("  Hey   ZOO ") == "hey zoo"
    assert phrase_slug("hey zoo") == "hey_zoo"


def test_a_phrase_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="window is 1 s"):
        check_fits("supercalifragilistic expialidocious")
    assert 0.3 < check_fits("hey zoo") < 1.0


def test_phoneme_neighbours_of_a_phrase():
    close = adversarial_phrases("hey zoo")
    target = phonemes(["hey zoo"])[0]
    kinds = set(close.values())
    assert {"partial", "reordered", "close_word", "close_spelling"} <= kinds
    assert {"hey", "zoo", "zoo hey"} <= set(close)
    assert "hey zoo" not in close and "hay zoo" not in close  # "hay zoo" sounds exactly like the phrase
    spoken = dict(zip(close, phonemes(close)))
    assert all(p != target for p in spoken.values())
    # substitutions stay near: every close word or spelling changes one word, a few phonemes away
    for text, kind in close.items():
        if kind in ("close_word", "close_spelling"):
            assert len(text.split()) == 2 and 1 <= edit_distance(spoken[text], target) <= 6, text


def test_general_words_leave_out_what_sounds_like_the_phrase():
    words = general_words("zoo")
    assert "water" in words and "zoo" not in words and "hello" in words


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "ab") == 2
