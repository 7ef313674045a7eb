"""Dataset descriptions shared by every reader: examples, the split container, and the data config.

Readers only list files; nothing here opens audio (that is `pipeline.load_waveforms`), so building a
`KwsData` for a 100k-file corpus takes seconds and never imports TensorFlow.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from kws_zoo.core.config import from_dict, to_dict
from kws_zoo.core.errors import ConfigError, DataError
from kws_zoo.data.splits import SPEAKER_HALVES, SPLITS, round_half_up
from kws_zoo.data.synthetic.defaults import default_corpus_dir

SILENCE = "_silence_"
MAX_NEGATIVE_PCT = 100000.0
UNKNOWN = "_unknown_"
KINDS = ("gsc", "folder", "fsdd", "testset", "pseudo")
PROTOCOLS = ("12", "35", "all")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Example:
    path: str  # "" means a silence example: zeros plus background noise, made by the pipeline
    label: int
    speaker: str


@dataclasses.dataclass
class KwsData:
    """labels[i] names class i; splits maps "train"/"validation"/"test" to examples; background lists
    noise WAVs for silence examples and noise mixing."""

    labels: tuple[str, ...]
    splits: dict[str, list[Example]]
    background: list[str] = dataclasses.field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def label_array(self, split: str) -> np.ndarray:
        return np.array([e.label for e in self.splits[split]], dtype=np.int32)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {label name: number of examples}} with every label present (zeros included)."""
        out = {}
        for split, examples in self.splits.items():
            hist = np.bincount([e.label for e in examples], minlength=self.num_classes)
            out[split] = {name: int(n) for name, n in zip(self.labels, hist)}
        return out

    def speaker_overlap(self) -> dict[tuple[str, str], set[str]]:
        """Speakers shared by two splits (silence examples have no speaker). Empty for GSC-style splits."""
        speakers = {s: {e.speaker for e in ex if e.speaker} for s, ex in self.splits.items()}
        names = list(self.splits)
        return {(a, b): speakers[a] & speakers[b] for i, a in enumerate(names) for b in names[i + 1:]
                if speakers[a] & speakers[b]}

    def relabel(self, labels: tuple[str, ...]) -> "KwsData":
        """The same examples indexed by another label tuple (matched by name), e.g. to evaluate a model
        trained on synthetic digits on FSDD. Names the target lacks map to _unknown_ if it has one."""
        index = {name: i for i, name in enumerate(labels)}
        missing = [n for n in self.labels if n not in index]
        if missing and UNKNOWN not in index:
            raise DataError(f"labels {missing} have no match in {labels} and there is no {UNKNOWN} class")
        new = [index.get(name, index.get(UNKNOWN)) for name in self.labels]
        splits = {s: [dataclasses.replace(e, label=new[e.label]) for e in ex] for s, ex in self.splits.items()}
        return KwsData(tuple(labels), splits, list(self.background))

    def summary(self) -> str:
        counts = self.counts()
        width = max(len(n) for n in self.labels)
        lines = [f"{'label':<{width}} " + " ".join(f"{s:>10}" for s in counts)]
        for name in self.labels:
            lines.append(f"{name:<{width}} " + " ".join(f"{counts[s][name]:>10}" for s in counts))
        lines.append(f"{'total':<{width}} " + " ".join(f"{len(self.splits[s]):>10}" for s in counts))
        lines.append(f"background clips: {len(self.background)}")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    kind: str = "gsc"
    path: str | None = None  # None -> default_path(kind)
    protocol: str = "12"  # gsc: "12" (10 words + silence + unknown), "35" (the v2 words), "all" folders
    words: tuple[str, ...] | None = None  # keywords; overrides protocol: words + silence + unknown
    silence_pct: float = 10.0  # silence examples per split, as % of that split's keyword examples
    unknown_pct: float = 10.0  # unknown-word examples per split, as % of that split's keyword examples
    validation_pct: float = 10  # of the hash split (folder, gsc without lists); fsdd counts takes (see splits)
    testing_pct: float = 10
    seed: int = 0  # which unknown files are sampled
    skip_bad_files: bool = False  # for pipeline.load_waveforms: drop unreadable files instead of stopping
    # Training additions (kws_zoo.data.extras): noise folders added to the background pool (real rooms for the
    # silence examples and noise mixing), and folders of words that are none of the keywords, drawn into the
    # training split's _unknown_ class (which keeps its size: they take half of it, seeded).
    background_dirs: tuple[str, ...] = ()
    unknown_dirs: tuple[str, ...] = ()
    # Real keyword clips added to the training split: the keyword examples (labels not starting with '_') of
    # each dataset listed, every split of it, after its own `speakers` / `max_per_label` filters.
    extra_train: tuple["DataConfig", ...] = ()
    speakers: str = "all"  # all | half_a | half_b (kws_zoo.data.splits.speaker_half): one half of the speakers
    max_per_label: int = 0  # at most this many examples per label and split, drawn with `seed` (0: all)
    repeat: int = 1  # as an extra_train dataset: each of its examples this many times (a few real clips count)
    with_unknown: bool = False  # as an extra_train dataset: its _unknown_ examples join too (another TTS corpus)
    # Silence examples labelled _unknown_ too: labels (_unknown_, *words). A wake word's two-class softmax is the
    # sigmoid of one logit difference, which is the single probability ESPHome's micro_wake_word reads.
    one_negative_class: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"dataset kind {self.kind!r} is not one of {KINDS}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol {self.protocol!r} is not one of {PROTOCOLS}")
        for name in ("validation_pct", "testing_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise ConfigError(f"{name} must be in [0, 100], got {getattr(self, name)}")
        for name in ("silence_pct", "unknown_pct"):  # above 100: more negatives than keyword examples
            if not 0 <= getattr(self, name) <= MAX_NEGATIVE_PCT:
                raise ConfigError(f"{name} must be in [0, {MAX_NEGATIVE_PCT}], got {getattr(self, name)}")
        if self.validation_pct + self.testing_pct >= 100:
            raise ConfigError("validation_pct + testing_pct must leave something for training")
        for name in ("background_dirs", "unknown_dirs"):
            object.__setattr__(self, name, tuple(str(p) for p in getattr(self, name)))
        object.__setattr__(self, "extra_train", tuple(self.extra_train))
        if self.speakers not in SPEAKER_HALVES:
            raise ConfigError(f"speakers must be one of {SPEAKER_HALVES}, got {self.speakers!r}")
        if self.max_per_label < 0 or self.repeat < 1:
            raise ConfigError(f"need max_per_label >= 0 and repeat >= 1, got {self.max_per_label}, {self.repeat}")
        if self.words is not None:
            words = tuple(self.words)
            object.__setattr__(self, "words", words)
            if not words or len(set(words)) != len(words) or {SILENCE, UNKNOWN} & set(words):
                raise ConfigError(f"words must be distinct, non-empty and not {SILENCE}/{UNKNOWN}: {words}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def display_name(self) -> str:
        """How reports and model cards name this dataset: its folder's name when a path is given
        ('gsc_v2_test_dev'), else its kind ('fsdd'); with the half of the speakers it keeps, if one."""
        name = Path(self.path).name if self.path else self.kind
        return name if self.speakers == "all" else f"{name}_{self.speakers}"

    def resolved_path(self) -> Path:
        """The path given (a relative one that does not exist from here is taken from the repository root, so a
        recipe's `../shared/...` works from any directory), else the kind's default."""
        return repo_path(self.path) if self.path else default_path(self.kind)


def repo_path(path: str) -> Path:
    """`path`; a relative one that does not exist from the working directory is taken from the repository root."""
    resolved = Path(path)
    return REPO_ROOT / resolved if not resolved.is_absolute() and not resolved.exists() else resolved


def default_path(kind: str) -> Path:
    """Where a dataset lives when the config gives no path. FSDD is shared, outside the repo."""
    if kind == "fsdd":
        return REPO_ROOT.parent / "shared" / "data" / "fsdd"
    if kind == "gsc":  # the built-in default: the synthetic corpus that `kws-zoo make-data` writes
        return default_corpus_dir()
    raise ConfigError(f"a {kind!r} dataset needs an explicit path")


def assemble(by_split: dict[str, dict[str, list[tuple[str, str]]]], words: tuple[str, ...],
             cfg: DataConfig) -> tuple[tuple[str, ...], dict[str, list[Example]]]:
    """Keyword protocol: `words` + silence (label 0) + unknown (label 1), as in TF's speech_commands.

    by_split[split][word] = [(path, speaker)]. Per split, with K keyword examples, unknown gets
    min(round(unknown_pct*K/100), pool) files drawn without replacement from every other word
    (deterministic in cfg.seed), and silence gets round(silence_pct*K/100) examples.
    """
    labels = (UNKNOWN, *words) if cfg.one_negative_class else (SILENCE, UNKNOWN, *words)
    index = {w: i for i, w in enumerate(labels)}
    if cfg.one_negative_class:
        index[SILENCE] = index[UNKNOWN]
    splits = {}
    for split_no, split in enumerate(SPLITS):
        files = by_split.get(split, {})
        keep = [Example(p, index[w], s) for w in words for p, s in files.get(w, [])]
        n_keywords = len(keep)
        pool = sorted((p, s) for w, items in files.items() if w not in index for p, s in items)
        n_unknown = min(round_half_up(cfg.unknown_pct * n_keywords / 100), len(pool))
        rng = np.random.default_rng([cfg.seed, split_no])
        chosen = np.sort(rng.choice(len(pool), size=n_unknown, replace=False)) if n_unknown else []
        keep += [Example(pool[i][0], index[UNKNOWN], pool[i][1]) for i in chosen]
        keep += [Example("", index[SILENCE], "")] * round_half_up(cfg.silence_pct * n_keywords / 100)
        splits[split] = keep
    return labels, splits


def plain(by_split: dict[str, dict[str, list[tuple[str, str]]]], words: tuple[str, ...]
          ) -> tuple[tuple[str, ...], dict[str, list[Example]]]:
    """Every word its own label, in the given order; no silence or unknown."""
    index = {w: i for i, w in enumerate(words)}
    return tuple(words), {split: [Example(p, index[w], s) for w in words for p, s in by_split.get(split, {}).get(w, [])]
                          for split in SPLITS}
