"""Hard-negative mining: every trigger of the detector over negative audio becomes a training-split clip."""
import numpy as np

from kws_zoo.data.audio import SAMPLE_RATE, read_wav
from kws_zoo.data.splits import gsc_split
from kws_zoo.evaluate.wake import MIN_SLICES, StreamScores
from kws_zoo.workflows.wakeword import mining


def test_mining_writes_the_second_before_each_trigger_into_the_training_split(tmp_path):
    stride, step_s = 3, 0.03
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, 60 * SAMPLE_RATE).astype(np.float32)
    probs = np.zeros(int(60 / step_s), np.uint8)
    quiet = -(-MIN_SLICES // stride)
    fires = [quiet + 200, quiet + 900, quiet + 1500]
    for f in fires:
        probs[f] = 200  # above the mining cut-off (0.5) for one invoke
    scores = StreamScores(probs, step_s, 0.05, [], 60.0)
    times = mining.triggers(scores, stride=stride)
    assert np.allclose(times, [0.05 + f * step_s for f in fires])
    clips = mining.mined_clips(audio, times)
    assert len(clips) == 3 and all(len(c) == SAMPLE_RATE for c in clips)
    end = int(round(times[1] * SAMPLE_RATE))
    assert np.array_equal(clips[1], audio[end - SAMPLE_RATE:end])
    written = mining.write_mined(clips, tmp_path / "mined_r1", 1)
    files = sorted((tmp_path / "mined_r1").glob("*.wav"))
    assert written == len(files) == 3
    assert all(gsc_split(f.name) == "train" for f in files)  # GSC's hash keeps them out of validation and test
    assert np.allclose(read_wav(files[0]), clips[0], atol=1e-4)


def test_triggers_in_the_first_second_have_no_whole_clip_and_are_skipped():
    audio = np.zeros(3 * SAMPLE_RATE, np.float32)
    assert len(mining.mined_clips(audio, [0.5, 2.0, 3.5])) == 1
