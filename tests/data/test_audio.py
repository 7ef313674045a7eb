"""kws_zoo.data.audio: every bad input is an AudioError naming the file; every WAV flavour reads as float32 mono."""
import struct

import numpy as np
import pytest
import soundfile as sf

from kws_zoo.core.errors import AudioError
from kws_zoo.data.audio import SAMPLE_RATE, fit_length, read_wav, write_wav


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def _valid_bytes(tmp_path) -> bytes:
    path = tmp_path / "valid.wav"
    sf.write(path, tone(440, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def _missing(tmp_path):
    return tmp_path / "missing.wav"


def _directory(tmp_path):
    (tmp_path / "adir.wav").mkdir()
    return tmp_path / "adir.wav"


def _empty(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    return tmp_path / "empty.wav"


def _truncated_header(tmp_path):
    (tmp_path / "trunc.wav").write_bytes(_valid_bytes(tmp_path)[:20])  # RIFF/WAVE, then half a fmt chunk
    return tmp_path / "trunc.wav"


def _corrupt_header(tmp_path):
    junk = b"fmt " + struct.pack("<I", 16) + b"\xff" * 16 + b"data" + struct.pack("<I", 8) + b"\x00" * 8
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + struct.pack("<I", 4 + len(junk)) + b"WAVE" + junk)
    return tmp_path / "corrupt.wav"


def _text(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio at all\n")
    return tmp_path / "notes.wav"


def _flac(tmp_path):
    sf.write(tmp_path / "flac.wav", tone(440, SAMPLE_RATE), SAMPLE_RATE, format="FLAC")
    return tmp_path / "flac.wav"


def _zero_samples(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), SAMPLE_RATE, subtype="PCM_16")
    return tmp_path / "zero.wav"


def _nan(tmp_path):
    x = tone(440, SAMPLE_RATE)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, SAMPLE_RATE, subtype="FLOAT")
    return tmp_path / "nan.wav"


def _inf(tmp_path):
    x = tone(440, SAMPLE_RATE).astype(np.float64)
    x[5] = -np.inf
    sf.write(tmp_path / "inf.wav", x, SAMPLE_RATE, subtype="DOUBLE")
    return tmp_path / "inf.wav"


BAD = {
    _missing: "not found", _directory: "directory", _empty: "empty", _truncated_header: "corrupt or truncated",
    _corrupt_header: "corrupt or truncated", _text: "not a WAV", _flac: "not a WAV",
    _zero_samples: "zero samples", _nan: "NaN or infinite", _inf: "NaN or infinite",
}


@pytest.mark.parametrize("make", list(BAD), ids=[f.__name__.strip("_") for f in BAD])
def test_bad_input_is_audio_error_naming_the_file(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(AudioError) as err:
        read_wav(path)
    assert err.value.path == str(path)
    assert str(err.value).startswith(f"{path}: ")
    assert BAD[make] in err.value.problem
    assert isinstance(err.value, ValueError)  # callers that catch ValueError still work


@pytest.mark.parametrize("subtype,tol", [("PCM_U8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6),
                                         ("FLOAT", 0), ("DOUBLE", 1e-7)])
def test_sample_formats_read_as_float32(tmp_path, subtype, tol):
    x = tone(440, SAMPLE_RATE)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype=subtype)
    y = read_wav(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == len(x)
    np.testing.assert_allclose(y, x, atol=tol)


def test_stereo_mixes_to_mono(tmp_path):
    left, right = tone(440, SAMPLE_RATE), tone(1000, SAMPLE_RATE, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(read_wav(tmp_path / "st.wav"), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_rates_resample_to_16k(tmp_path, rate):
    sf.write(tmp_path / "r.wav", tone(1000, rate, seconds=1.0), rate, subtype="PCM_16")
    y = read_wav(tmp_path / "r.wav")
    assert y.dtype == np.float32
    assert abs(len(y) - SAMPLE_RATE) <= 1
    assert abs(peak_hz(y, SAMPLE_RATE) - 1000) < 3  # same pitch, so the rate was really converted
    assert 0.45 < np.abs(y[1000:-1000]).max() < 0.55  # level kept


def test_fit_length_centres():
    x = np.arange(1, 5, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 8), [0, 0, 1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(fit_length(np.arange(10), 4), [3, 4, 5, 6])
    assert len(fit_length(x, 4)) == 4


def test_write_wav_round_trip_leaves_no_temp(tmp_path):
    x = tone(300, SAMPLE_RATE)
    write_wav(tmp_path / "w.wav", x * 3)  # out of range: clipped, not wrapped
    assert [p.name for p in tmp_path.iterdir()] == ["w.wav"]
    y = read_wav(tmp_path / "w.wav")
    assert np.abs(y).max() <= 1.0 and np.corrcoef(y, x)[0, 1] > 0.9
