"""A wake-word build's settings: one JSON file (`{"kind": "wakeword", "phrase": ...}`), saved beside its outputs.

Presets are streaming architectures on TFLM's micro frontend. `matchboxnet_wake`, `repcnn_wake` (its multi-branch
RepCNN form) and `repcnn_wake_plain` are 1-D time convolutions stepping every 30 ms ([1, 3, 40] in, as
microWakeWord's models); the 2-D RepCNN-S pair and BC-ResNet-1 step every 10 ms.
"""
from __future__ import annotations

import dataclasses
import json
import os

from kws_zoo.core.config import from_dict, to_dict
from kws_zoo.core.errors import ConfigError, RecipeError
from kws_zoo.data.synthetic.defaults import ENGINES
from kws_zoo.data.synthetic.phrases import check_phrase

KIND = "wakeword"
# preset -> (registered streamable model, epochs per round)
PRESETS = {"matchboxnet_wake": ("matchboxnet_wake", 12),
           "repcnn_wake": ("repcnn_wake", 12), "repcnn_wake_plain": ("repcnn_wake_plain", 12),
           "repcnn_s": ("repcnn_s_stream", 10), "repcnn_s_plain": ("repcnn_s_stream_plain", 10),
           "bc_resnet_1": ("bc_resnet_1_stream", 10)}
SHARED = os.path.join("..", "shared", "data")  # the real recordings, relative to the project root (see its README)
REAL_BACKGROUND = (os.path.join(SHARED, "real", "gsc_background_noise"),)
REAL_SPEECH = (os.path.join(SHARED, "real", "mycroft_precise", "not-wake-words"),
               os.path.join(SHARED, "real", "gsc_v2_test_dev"), os.path.join(SHARED, "real", "gsc_unknown_words"))
# real wake-word recordings by phrase (folders of ../shared/data/real/mycroft_precise)
REAL_WAKE_WORDS = {"athena": "athena", "amelia": "amelia", "computer": "computer", "hey computer": "heycomputer",
                   "hey chatterbox": "heychatterbox"}


@dataclasses.dataclass(frozen=True)
class WakewordConfig:
    phrase: str
    preset: str = "matchboxnet_wake"
    esphome: bool = True             # the model must fit ESPHome's micro_wake_word (checked before training)
    rounds: int = 2                  # trainings; hard negatives are mined between them
    epochs: int = 0                  # per round; 0: the preset's
    target_fa_per_hour: float = 0.5
    takes: int = 2                   # positive takes per speaker
    positive_speakers: int = 0       # speakers of the phrase; 0: all (every voice and variant of every engine)
    adversarial_speakers: int = 150  # speakers of each phrase that sounds close
    general_speakers: int = 16       # speakers of each everyday word
    engines: tuple[str, ...] = ENGINES
    negative_weight: float = 3.0     # loss weight of a negative example (a false accept costs more)
    positives_dir: str | None = None  # the user's own recordings of the phrase (16 kHz WAV), training only
    negatives_dir: str | None = None  # the user's recordings that must not trigger, training only
    validation_hours: float = 1.0    # streams of validation voices: where the cut-off is chosen
    test_hours: float = 5.0          # streams of test voices: what the card reports
    mining_hours: float = 1.0        # negative streams of training voices, per mining round
    float_compare_hours: float = 1.0  # test hours also run through the float Keras model
    count_instructions: bool = True  # callgrind over the TFLM invoke (needs valgrind)
    real_background: tuple[str, ...] = REAL_BACKGROUND
    real_speech: tuple[str, ...] = REAL_SPEECH
    author: str = "kws_zoo"
    website: str = "https://github.com/kws-zoo/kws_zoo"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "phrase", check_phrase(self.phrase))
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown wake-word preset {self.preset!r}; choose from {sorted(PRESETS)}")
        for name in ("rounds", "takes", "adversarial_speakers", "general_speakers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.positive_speakers < 0:
            raise ConfigError("epochs and positive_speakers must be >= 0, got "
                              f"{self.epochs}, {self.positive_speakers}")
        for name in ("validation_hours", "test_hours", "mining_hours", "target_fa_per_hour", "negative_weight"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.float_compare_hours <= self.test_hours:
            raise ConfigError(f"float_compare_hours must be in [0, test_hours], got {self.float_compare_hours}")
        for name in ("engines", "real_background", "real_speech"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [e for e in self.engines if e not in ENGINES]
        if bad or not self.engines:
            raise ConfigError(f"engines must be some of {ENGINES}, got {list(self.engines)}")

    @property
    def model(self) -> str:
        return PRESETS[self.preset][0]

    @property
    def epochs_per_round(self) -> int:
        return self.epochs or PRESETS[self.preset][1]

    def to_dict(self) -> dict:
        return {"kind": KIND, **to_dict(self)}


def load_wakeword(path: str) -> WakewordConfig:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise RecipeError(f"{path}: cannot read the wake-word recipe ({err})") from None
    if not isinstance(data, dict) or data.pop("kind", None) != KIND:
        raise RecipeError(f"{path}: not a wake-word recipe (needs \"kind\": \"{KIND}\")")
    try:
        return from_dict(WakewordConfig, data)
    except (ConfigError, TypeError) as err:
        raise RecipeError(f"{path}: {err}") from None


def is_wakeword_recipe(path: str) -> bool:
    try:
        with open(path) as f:
            return json.load(f).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False
