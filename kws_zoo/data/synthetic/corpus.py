"""Built-in synthetic keyword corpus in the Google Speech Commands layout, spoken by TTS voices.

A "speaker" is a TTS voice plus its own rate and pitch; its 8-hex-digit id is the GSC file-name prefix,
so GSC's hash rule (kws_zoo.data.splits.gsc_split) splits by speaker exactly as for the real corpus. Every clip
is a pure function of (seed, speaker, word, take): the result is identical for any worker count, and a
re-run only renders the files that are missing.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm

from kws_zoo.core.errors import ConfigError, DataError, EngineError
from kws_zoo.core.files import atomic_write_text
from kws_zoo.data.audio import SAMPLE_RATE, fit_length, write_wav
from kws_zoo.data.splits import SPLITS, gsc_split, speaker_of
from kws_zoo.data.synthetic import noise
from kws_zoo.data.synthetic.defaults import DEFAULT_ENGINES, DEFAULT_SPEAKERS, ENGINES
from kws_zoo.data.synthetic.tts import check_engine, engine_version, tts_render, tts_render_many, voices

GSC_V2_WORDS = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four",
                "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right",
                "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORD_SETS = {"gsc35": GSC_V2_WORDS, "digits": DIGITS}

GENERATOR_VERSION = 1  # bump when a clip's rendering changes, so old and new clips never mix
BACKGROUND_DIR = "_background_noise_"
IDENTITIES_PER_VOICE = 8  # flite and festival have few voices; each gets this many speakers
# A neural voice is one real speaker; it becomes this many by pitch and vocal-tract length (voice_shift).
NEURAL_IDENTITIES_PER_VOICE = 400
# Default size: ~100 clips/s per worker for every engine (measured on the 2-core dev machine), so 500
# speakers x 35 words = 17,500 clips take ~2.5 min with 2 workers, leaving the quickstart time to
# train. `speakers=None` (all 864) makes 30,240 clips in ~4 min. See data/README.md.
# Speaker-level ranges (relative to the voice's default). espeak's pitch control is coarse, so it
# gets a wider range; flite/festival voices sound broken beyond about +-25 %.
SPEAKER_RATE = {"espeak": (0.8, 1.25), "flite": (0.85, 1.2), "festival": (0.85, 1.2), "piper": (0.8, 1.25)}
SPEAKER_PITCH = {"espeak": (0.5, 1.5), "flite": (0.8, 1.25), "festival": (0.8, 1.25), "piper": (0.8, 2.4)}
# Neural voices only: formant factor, drawn with the pitch's stratum so that high voices tend to have short vocal
# tracts as people do (en_US-joe: F0 about 94 Hz; x2.4 is a child's 225 Hz, formants x1.25 a child's tract).
SPEAKER_FORMANT = (0.92, 1.25)
FORMANT_SPREAD = 0.15  # independent share of the formant draw, in units of its range
RATE_JITTER, PITCH_JITTER = 0.06, 0.04  # per-utterance, relative
GAIN_DBFS = (-20.0, -1.0)  # clip peak level
MAX_OFFSET_S = 0.1  # the word's centre moves at most this far from the clip centre
MAX_SPEECH_S = 0.92  # longer renders are redone faster so the word fits in 1 s
_WORD_RE = re.compile(r"^[a-z][a-z_'-]*$")


@dataclass(frozen=True)
class Speaker:
    id: str  # 8 hex digits: the file-name prefix GSC's split hashes
    engine: str
    voice: str
    rate: float
    pitch: float
    formant: float = 1.0  # vocal-tract length factor (voice_shift); 1.0 for the formant synthesizers


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any parts; unlike hash() it is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")


def all_speakers(seed: int, engines: Sequence[str] = DEFAULT_ENGINES) -> list[Speaker]:
    """Every speaker identity, in selection order: each engine's list shuffled, then dealt round-robin
    so that any prefix (`speakers=N`) covers all engines and grows without reshuffling."""
    per_engine = []
    for engine in engines:
        if engine not in ENGINES:
            raise ConfigError(f"unknown TTS engine {engine!r}; choose from {ENGINES}")
        names = voices(engine)
        reps = {"espeak": 1, "piper": NEURAL_IDENTITIES_PER_VOICE}.get(engine, IDENTITIES_PER_VOICE)
        rng = np.random.default_rng(stable_seed(seed, "speakers", engine))
        # stratified draws keep the identities of one voice audibly apart
        strata = [(rng.permutation(reps), rng.permutation(reps)) for _ in names]
        found = []
        for v, voice in enumerate(names):
            for k in range(reps):
                (rate_lo, rate_hi), (pitch_lo, pitch_hi) = SPEAKER_RATE[engine], SPEAKER_PITCH[engine]
                rate = rate_lo + (strata[v][0][k] + rng.random()) / reps * (rate_hi - rate_lo)
                height = (strata[v][1][k] + rng.random()) / reps
                sid = hashlib.sha1(f"kws_zoo/{seed}/{engine}/{voice}/{k}".encode()).hexdigest()[:8]
                if engine == "piper":  # log-uniform pitch; formants follow it loosely (SPEAKER_FORMANT)
                    pitch = pitch_lo * (pitch_hi / pitch_lo) ** height
                    share = float(np.clip(height + FORMANT_SPREAD * rng.standard_normal(), 0.0, 1.0))
                    formant = SPEAKER_FORMANT[0] + share * (SPEAKER_FORMANT[1] - SPEAKER_FORMANT[0])
                    found.append(Speaker(sid, engine, voice, round(rate, 4), round(pitch, 4), round(formant, 4)))
                else:
                    pitch = pitch_lo + height * (pitch_hi - pitch_lo)
                    found.append(Speaker(sid, engine, voice, round(rate, 4), round(pitch, 4)))
        per_engine.append([found[i] for i in rng.permutation(len(found))])
    out = [group[i] for i in range(max(map(len, per_engine), default=0)) for group in per_engine if i < len(group)]
    if len({s.id for s in out}) != len(out):
        raise ConfigError(f"seed {seed} gives two speakers the same id; choose another seed")
    return out


def select_speakers(seed: int, engines: Sequence[str], limit: int | None) -> list[Speaker]:
    speakers = all_speakers(seed, engines)
    return speakers if limit is None else speakers[:limit]


def clip_params(seed: int, speaker: Speaker, word: str, take: int) -> dict[str, float]:
    """Per-utterance rate, pitch, gain and offset. Takes of one word spread their rate jitter along a
    van der Corput sequence, so no two takes are the same utterance."""
    rng = np.random.default_rng(stable_seed(seed, "clip", speaker.id, word))
    base = rng.random()
    spread = (base + _van_der_corput(take)) % 1.0
    rng = np.random.default_rng(stable_seed(seed, "clip", speaker.id, word, take))
    return {"rate": speaker.rate * (1 + RATE_JITTER * (2 * spread - 1)),
            "pitch": speaker.pitch * (1 + PITCH_JITTER * rng.uniform(-1, 1)),
            "gain_db": rng.uniform(*GAIN_DBFS), "offset": rng.uniform(-1, 1)}


def render_clips(seed: int, speaker: Speaker, jobs: Sequence[tuple[str, int]],
                 texts: Mapping[str, str] | None = None) -> list[np.ndarray]:
    """The finished 1 s clips for (word, take) jobs of one speaker (one festival process for all); `texts`
    maps a word (folder) to what is said when that differs, e.g. 'hey_zoo' -> 'hey zoo'."""
    texts = texts or {}
    params = [clip_params(seed, speaker, word, take) for word, take in jobs]
    spoken = [texts.get(word, word) for word, _ in jobs]
    items = [(text, p["rate"], p["pitch"]) for text, p in zip(spoken, params)]
    raw = tts_render_many(speaker.engine, speaker.voice, items, formant=speaker.formant)
    return [_finish(speaker, text, audio, p) for text, audio, p in zip(spoken, raw, params)]


def _finish(speaker: Speaker, word: str, audio: np.ndarray, p: dict[str, float]) -> np.ndarray:
    speech = _trim(audio)
    rate = p["rate"]
    for _ in range(3):  # slow speakers can overrun 1 s on long words: say it faster
        if len(speech) <= MAX_SPEECH_S * SAMPLE_RATE:
            break
        rate *= len(speech) / (0.9 * MAX_SPEECH_S * SAMPLE_RATE)
        speech = _trim(tts_render(speaker.engine, speaker.voice, word, rate=rate, pitch=p["pitch"],
                                  formant=speaker.formant))
    else:
        if len(speech) > MAX_SPEECH_S * SAMPLE_RATE:
            raise EngineError(f"{speaker.engine} voice {speaker.voice} cannot say {word!r} within 1 s")
    if len(speech) < 0.08 * SAMPLE_RATE or np.max(np.abs(speech)) < 1e-3:
        raise EngineError(f"{speaker.engine} voice {speaker.voice} rendered no audible speech for {word!r} "
                          f"(speaker {speaker.id}); the engine cannot say this word")
    slack = SAMPLE_RATE - len(speech)
    shift = int(round(p["offset"] * min(slack // 2, int(MAX_OFFSET_S * SAMPLE_RATE))))
    # padding 2*shift on one side moves the centre by `shift` once fit_length centres the result
    placed = fit_length(np.pad(speech, (2 * shift, 0) if shift > 0 else (0, -2 * shift)), SAMPLE_RATE)
    return (placed * (10 ** (p["gain_db"] / 20) / np.max(np.abs(placed)))).astype(np.float32)


def _trim(audio: np.ndarray, hop: int = 160, floor_db: float = -40.0, pad: int = 480) -> np.ndarray:
    """Cuts the engine's leading/trailing silence: frames 40 dB below the loudest one, kept with 30 ms."""
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    if frames.size == 0:
        return audio[:0]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    active = np.flatnonzero(rms > max(rms.max() * 10 ** (floor_db / 20), 1e-5))
    if active.size == 0:
        return audio[:0]
    return audio[max(active[0] * hop - pad, 0): min((active[-1] + 1) * hop + pad, len(audio))]


def _van_der_corput(n: int) -> float:
    out, denom = 0.0, 1.0
    while n:
        n, bit = divmod(n, 2)
        denom *= 2
        out += bit / denom
    return out


def _babble_talkers(seed: int, engines: Sequence[str]) -> list[tuple[str, str]]:
    """A few voices per engine, so babble is not all espeak (which has most voices)."""
    rng = np.random.default_rng(stable_seed(seed, "babble-talkers"))
    out = []
    for engine in engines:
        names = voices(engine)
        out += [(engine, names[i]) for i in sorted(rng.choice(len(names), size=min(6, len(names)), replace=False))]
    return out


# ---- the plan: tasks of a corpus, shared by make_corpus and the Beam pipeline (beam_corpus) --------------------

def clip_path(word: str, speaker_id: str, take: int) -> str:
    """A clip's path relative to the corpus root ('yes/1a2b3c4d_nohash_0.wav'): its file and its Beam key."""
    return f"{word}/{speaker_id}_nohash_{take}.wav"


@dataclass(frozen=True)
class SpeakerTask:
    """Every (word, take) clip of one speaker: one TTS process renders them all (festival starts slowly)."""
    seed: int
    speaker: Speaker
    jobs: tuple[tuple[str, int], ...]
    texts: tuple[tuple[str, str], ...] = ()

    @property
    def size(self) -> int:
        return len(self.jobs)

    def render(self) -> list[tuple[str, np.ndarray]]:
        """[(relative path, 1 s clip)], a pure function of the task."""
        clips = render_clips(self.seed, self.speaker, self.jobs, dict(self.texts))
        return [(clip_path(word, self.speaker.id, take), clip) for (word, take), clip in zip(self.jobs, clips)]


@dataclass(frozen=True)
class BackgroundTask:
    """One background-noise file of `_background_noise_/`."""
    seed: int
    name: str
    babble_words: tuple[str, ...]
    engines: tuple[str, ...]

    size = 1

    def render(self) -> list[tuple[str, np.ndarray]]:
        make = noise.generators(self.babble_words, _babble_talkers(self.seed, self.engines))[self.name]
        return [(f"{BACKGROUND_DIR}/{self.name}", make(stable_seed(self.seed, "background", self.name)))]


@dataclass(frozen=True)
class CorpusPlan:
    """What a corpus holds for its settings; make_corpus and make_beam_corpus both render exactly its tasks."""
    seed: int
    words: tuple[str, ...]
    speakers: tuple[Speaker, ...]
    takes: int
    settings: dict  # for the card: the arguments as given (speakers may be None: all)
    texts: tuple[tuple[str, str], ...]
    babble_words: tuple[str, ...]

    @property
    def used_engines(self) -> tuple[str, ...]:
        return tuple(e for e in self.settings["engines"] if any(s.engine == e for s in self.speakers))

    def check_engines(self) -> None:
        """Fails before any rendering if a binary or voice is missing."""
        for engine in self.used_engines:
            check_engine(engine)

    def background_names(self) -> list[str]:
        return list(noise.generators(self.babble_words, _babble_talkers(self.seed, self.used_engines)))

    def tasks(self, missing: Callable[[str], bool] = lambda rel: True) -> list[SpeakerTask | BackgroundTask]:
        """The tasks that render the files `missing(relative path)` says are missing, slowest first (background,
        festival) so a pool does not end on one long task."""
        tasks: list[SpeakerTask | BackgroundTask] = [
            BackgroundTask(self.seed, name, self.babble_words, self.used_engines)
            for name in self.background_names() if missing(f"{BACKGROUND_DIR}/{name}")]
        for sp in self.speakers:
            jobs = tuple((w, t) for w in self.words for t in range(self.takes) if missing(clip_path(w, sp.id, t)))
            if jobs:
                tasks.append(SpeakerTask(self.seed, sp, jobs, self.texts))
        return sorted(tasks, key=lambda t: 0 if isinstance(t, BackgroundTask) else
                      1 if t.speaker.engine == "festival" else 2)


def plan_corpus(words: Sequence[str] = GSC_V2_WORDS, *, speakers: int | None = DEFAULT_SPEAKERS, takes: int = 1,
                seed: int = 0, engines: Sequence[str] = DEFAULT_ENGINES, texts: Mapping[str, str] | None = None,
                babble_words: Sequence[str] | None = None) -> CorpusPlan:
    """The plan of make_corpus's corpus (its arguments are documented there); checks them, renders nothing."""
    words, engines = _check_words(words), tuple(engines)
    if speakers is not None and speakers < 1 or takes < 1:
        raise ConfigError("speakers and takes must be >= 1")
    settings = {"words": list(words), "speakers": speakers, "takes": takes, "engines": list(engines)}
    babble = tuple(words if babble_words is None else babble_words)
    return CorpusPlan(seed, words, tuple(select_speakers(seed, engines, speakers)), takes, settings,
                      tuple(sorted(dict(texts or {}).items())), babble)


def _write_task(args: tuple[SpeakerTask | BackgroundTask, str]) -> int:
    """Runs in a worker process (a top-level function so it pickles)."""
    task, out_dir = args
    for rel, audio in task.render():
        write_wav(os.path.join(out_dir, rel), audio)
    return task.size


# ---- corpus ---------------------------------------------------------------------------------------------

def make_corpus(out_dir: str | os.PathLike, words: Sequence[str] = GSC_V2_WORDS, *,
                speakers: int | None = DEFAULT_SPEAKERS, takes: int = 1, seed: int = 0, workers: int = 2,
                progress: bool = True, engines: Sequence[str] = DEFAULT_ENGINES,
                texts: Mapping[str, str] | None = None, babble_words: Sequence[str] | None = None) -> dict:
    """Writes (or completes) the corpus in `out_dir` and returns its card; `speakers=None` uses all.

    texts: what is said for a word folder whose name is not the text ('hey_zoo' -> 'hey zoo'); babble_words:
    the vocabulary of the babble noise (default `words`; a wake-word corpus keeps its phrase out of it)."""
    plan = plan_corpus(words, speakers=speakers, takes=takes, seed=seed, engines=engines, texts=texts,
                       babble_words=babble_words)
    out = Path(out_dir)
    claim_corpus_dir(out, seed)
    plan.check_engines()
    for word in plan.words:
        (out / word).mkdir(parents=True, exist_ok=True)
        for stale in (out / word).glob("*.wav.tmp*"):  # left by a run killed inside write_wav
            stale.unlink()
    (out / BACKGROUND_DIR).mkdir(exist_ok=True)
    tasks = plan.tasks(missing=lambda rel: not (out / rel).exists())
    _execute([(task, str(out)) for task in tasks], sum(task.size for task in tasks), workers, progress)
    return write_card(out, seed, plan.settings)


def _execute(tasks: list[tuple], total: int, workers: int, progress: bool) -> None:
    with tqdm(total=total, unit="file", desc="synthetic corpus", disable=not progress, smoothing=0.1) as bar:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                bar.update(_write_task(task))
            return
        # spawn, not fork: the caller may have TensorFlow's threads running
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(tasks))) as pool:
            for done in pool.imap_unordered(_write_task, tasks):
                bar.update(done)


def _check_words(words: Iterable[str]) -> tuple[str, ...]:
    words = tuple(words)
    bad = [w for w in words if not _WORD_RE.match(w)]
    if not words or bad or len(set(words)) != len(words):
        raise ConfigError(f"words must be unique lowercase words (letters, _, ' and -); got {list(words)}")
    return words


def claim_corpus_dir(out: Path, seed: int) -> None:
    """Refuses to add clips to a directory made with another seed or generator version (they would mix)."""
    stamp = out / ".kws_zoo_synthetic.json"
    mine = {"seed": seed, "generator_version": GENERATOR_VERSION}
    if stamp.exists():
        theirs = json.loads(stamp.read_text())
        if theirs != mine:
            raise DataError(f"{out} holds a synthetic corpus made with {theirs}, not {mine}; "
                             "use another output directory or the same seed")
        return
    if out.exists() and any(p.name != BACKGROUND_DIR and p.is_dir() for p in out.iterdir()):
        raise DataError(f"{out} already contains data that this generator did not make; choose an empty dir")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(mine))


# ---- lists and card ---------------------------------------------------------------------------------------

def write_card(out: Path, seed: int, settings: dict) -> dict:
    """Scans the files on disk, writes validation/testing lists and card.json/card.md, returns the card.

    Lists come from the disk, not the plan, so clips left by an earlier, bigger run are still listed
    in the split their speaker belongs to (a reader treats unlisted files as training data)."""
    by_id = {s.id: s for s in all_speakers(seed, ENGINES)}
    files = sorted(f"{d.name}/{f.name}" for d in out.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
                   for f in d.iterdir() if f.suffix == ".wav")
    split_of = {rel: gsc_split(rel) for rel in files}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        atomic_write_text(out / name, "".join(f"{rel}\n" for rel in files if split_of[rel] == split))

    words = sorted({rel.split("/")[0] for rel in files})
    per_word = {w: dict.fromkeys(SPLITS, 0) for w in words}
    per_split, per_engine = dict.fromkeys(SPLITS, 0), {}
    spk_split: dict[str, str] = {}
    for rel, split in split_of.items():
        per_word[rel.split("/")[0]][split] += 1
        per_split[split] += 1
        sid = speaker_of(rel)
        engine = by_id[sid].engine if sid in by_id else "unknown"
        per_engine[engine] = per_engine.get(engine, 0) + 1
        spk_split[sid] = split
    spk_engine: dict[str, dict[str, int]] = {}
    for sid, split in spk_split.items():
        row = spk_engine.setdefault(by_id[sid].engine if sid in by_id else "unknown", dict.fromkeys(SPLITS, 0))
        row[split] += 1
    background = {p.name: {"seconds": round(_wav_seconds(p), 2), "description": noise.DESCRIPTIONS.get(p.name, "")}
                  for p in sorted((out / BACKGROUND_DIR).glob("*.wav"))}
    card = {
        "name": "kws_zoo synthetic speech commands", "generator_version": GENERATOR_VERSION, "seed": seed,
        "layout": "Google Speech Commands v2 (word/<speaker>_nohash_<take>.wav, 16 kHz mono 16-bit, 1 s)",
        "settings": {**settings, "sample_rate": SAMPLE_RATE, "clip_seconds": 1.0, "gain_dbfs": list(GAIN_DBFS),
                     "max_offset_s": MAX_OFFSET_S, "rate_jitter": RATE_JITTER, "pitch_jitter": PITCH_JITTER,
                     "speaker_rate": SPEAKER_RATE, "speaker_pitch": SPEAKER_PITCH,
                     "speaker_formant_neural": SPEAKER_FORMANT,
                     "identities_per_voice": IDENTITIES_PER_VOICE, "validation_pct": 10, "testing_pct": 10},
        "tools": {e: _safe_version(e) for e in ENGINES},
        "num_clips": len(files), "words": words, "counts_per_word": per_word, "counts_per_split": per_split,
        "counts_per_engine": dict(sorted(per_engine.items())),
        "num_speakers": len(spk_split), "speakers_per_engine_and_split": dict(sorted(spk_engine.items())),
        "background_noise": background,
        "speakers": [{**(asdict(by_id[sid]) if sid in by_id else {"id": sid}), "split": spk_split[sid]}
                     for sid in sorted(spk_split)],
    }
    card = json.loads(json.dumps(card))  # the caller gets exactly what card.json holds (lists, not tuples)
    atomic_write_text(out / "card.json", json.dumps(card, indent=1) + "\n")
    atomic_write_text(out / "card.md", _card_markdown(card))
    return card


def _card_markdown(card: dict) -> str:
    s = card["settings"]
    lines = [f"# {card['name']}", "",
             f"{card['num_clips']} clips of {len(card['words'])} words from {card['num_speakers']} TTS speakers "
             f"(seed {card['seed']}, generator v{card['generator_version']}). {card['layout']}.", "",
             "Speakers are TTS voices with their own rate and pitch; splits follow GSC's speaker hash "
             f"({s['validation_pct']}% validation, {s['testing_pct']}% test). Per clip: rate jitter "
             f"±{s['rate_jitter']:.0%}, pitch jitter ±{s['pitch_jitter']:.0%}, peak {s['gain_dbfs'][0]:g} to "
             f"{s['gain_dbfs'][1]:g} dBFS, word centre within ±{s['max_offset_s']} s of the clip centre.", "",
             "| word | train | validation | test |", "|---|---:|---:|---:|"]
    lines += [f"| {w} | " + " | ".join(str(c[k]) for k in SPLITS) + " |" for w, c in card["counts_per_word"].items()]
    lines += ["| **all** | " + " | ".join(str(card["counts_per_split"][k]) for k in SPLITS) + " |", "",
              "| engine | clips | speakers (train/validation/test) | version |", "|---|---:|---|---|"]
    for engine, n in card["counts_per_engine"].items():
        spk = card["speakers_per_engine_and_split"].get(engine, {})
        lines.append(f"| {engine} | {n} | {'/'.join(str(spk.get(k, 0)) for k in SPLITS)} | "
                     f"{card['tools'].get(engine, '')} |")
    lines += ["", "Background noise (`_background_noise_/`, -20 dBFS RMS):", ""]
    lines += [f"- `{name}` ({b['seconds']:g} s): {b['description']}" for name, b in card["background_noise"].items()]
    lines += ["", f"Settings: `{json.dumps({k: s[k] for k in ('speakers', 'takes', 'engines')})}`", ""]
    return "\n".join(lines)


def _wav_seconds(path: Path) -> float:
    return sf.info(str(path)).duration


def _safe_version(engine: str) -> str:
    try:
        return engine_version(engine)
    except EngineError:
        return "not installed"


# ---- command line -----------------------------------------------------------------------------------------


def words_from_spec(spec: str) -> tuple[str, ...]:
    """A named word set ('gsc35', 'digits') or a comma-separated list of words."""
    return WORD_SETS.get(spec) or tuple(w.strip() for w in spec.split(",") if w.strip())
