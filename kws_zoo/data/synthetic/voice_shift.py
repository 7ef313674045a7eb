"""Speaker perturbation at the waveform level with the WORLD vocoder (pyworld): pitch and vocal-tract length apart.

Resampling a clip ("playing it faster") raises pitch and formants together by one factor and shortens it. Real
speakers differ in both independently (adult women have about 1.7x men's F0 but only 1.15-1.2x their formant
frequencies), so a voice made to sound like another speaker needs the two apart: WORLD splits speech into F0, a
spectral envelope (the vocal tract) and aperiodicity; here F0 is scaled by `pitch` and the envelope's frequency
axis by `formant` (vocal-tract-length perturbation, > 1 = a shorter tract), then WORLD re-synthesizes. Duration is
unchanged. Pure function of its inputs (WORLD is deterministic).
"""
from __future__ import annotations

import dataclasses

import numpy as np

FRAME_MS = 5.0  # WORLD's analysis hop
F0_FLOOR, F0_CEIL = 60.0, 500.0  # adult and child speech; the range F0 is searched in before scaling


@dataclasses.dataclass(frozen=True)
class WorldAnalysis:
    """WORLD's decomposition of one clip: F0 per frame (0 = unvoiced), spectral envelope and aperiodicity."""
    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray
    sample_rate: int
    samples: int


def analyse(audio: np.ndarray, sample_rate: int) -> WorldAnalysis:
    import pyworld  # only the corpus generator needs it

    x = np.ascontiguousarray(audio, dtype=np.float64)
    # harvest, not the faster dio: dio found 2% of a neural TTS word voiced, at twice its F0 (harvest: 31%, 94 Hz)
    f0, times = pyworld.harvest(x, sample_rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    return WorldAnalysis(f0, pyworld.cheaptrick(x, f0, times, sample_rate), pyworld.d4c(x, f0, times, sample_rate),
                         sample_rate, len(audio))


def resynthesize(analysis: WorldAnalysis, *, pitch: float = 1.0, formant: float = 1.0) -> np.ndarray:
    """The analysed clip with its F0 times `pitch` and its formants times `formant`, as float32."""
    import pyworld

    _check_factors(pitch, formant)
    y = pyworld.synthesize(analysis.f0 * pitch, warp_frequencies(analysis.envelope, formant), analysis.aperiodicity,
                           analysis.sample_rate, frame_period=FRAME_MS)
    return y[: analysis.samples].astype(np.float32)


def shift_voice(audio: np.ndarray, sample_rate: int, *, pitch: float = 1.0, formant: float = 1.0) -> np.ndarray:
    """`audio` (float mono) with its F0 times `pitch` and its formants times `formant`, as float32."""
    _check_factors(pitch, formant)
    if pitch == 1.0 and formant == 1.0:
        return audio.astype(np.float32)
    return resynthesize(analyse(audio, sample_rate), pitch=pitch, formant=formant)


def _check_factors(pitch: float, formant: float) -> None:
    if pitch <= 0 or formant <= 0:
        raise ValueError(f"pitch and formant must be > 0, got {pitch}, {formant}")


def warp_frequencies(envelope: np.ndarray, factor: float) -> np.ndarray:
    """Spectra [frames, bins] with their frequency axis stretched by `factor`: what was at bin k moves to bin
    k * factor (linear interpolation; above the old top the last bin's value is kept)."""
    if factor == 1.0:
        return envelope
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    source = np.minimum(bins / factor, bins[-1])
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, bins.size - 1)
    weight = source - lower
    return np.ascontiguousarray(envelope[:, lower] * (1 - weight) + envelope[:, upper] * weight)
