"""The wake-word detector (ESPHome's decision logic), its scoring, the Poisson interval and the cut-off choice."""
import numpy as np
import pytest

from kws_zoo.core.errors import ConfigError
from kws_zoo.evaluate.wake import (MIN_SLICES, StreamScores, choose, cutoff_u8, detect, poisson_interval, score,
                                   to_u8)


@pytest.mark.parametrize("count, hours, low, high", [
    (0, 1.0, 0.0, 3.6889),        # the "rule of three": 95% upper bound of a rate with no events
    (1, 1.0, 0.0253, 5.5716),
    (10, 1.0, 4.7954, 18.3904),   # Garwood's tabulated exact interval
    (10, 5.0, 0.9591, 3.6781),    # the same count over five hours: a fifth of the rate
])
def test_poisson_interval_matches_the_exact_tables(count, hours, low, high):
    lo, hi = poisson_interval(count, hours)
    assert lo == pytest.approx(low, abs=2e-4) and hi == pytest.approx(high, abs=2e-4)


def test_poisson_interval_rejects_no_exposure():
    with pytest.raises(ConfigError):
        poisson_interval(1, 0.0)


def test_detector_needs_the_window_mean_above_the_cutoff_and_waits_after_a_detection():
    stride = 3
    needed = -(-MIN_SLICES // stride)  # invokes below the cut-off before the first detection is allowed
    p = np.zeros(400, np.uint8)
    p[needed + 10:needed + 12] = 255          # two high invokes: mean of 3 is 170 < 200, no detection
    p[needed + 40:needed + 45] = 250          # five: fires on the third (sum 750 > 600)
    p[needed + 50:needed + 53] = 250          # too soon after the detection: the wait is not over
    p[needed + 150:needed + 153] = 250        # after the wait: fires again
    hits = detect(p, 200, 3, stride)
    assert hits.tolist() == [needed + 42, needed + 152]


def test_detector_is_silent_at_start_until_enough_quiet_slices_passed():
    p = np.full(200, 250, np.uint8)
    assert detect(p, 200, 1, 3).size == 0  # never below the cut-off: never allowed


def test_score_matches_detections_to_events_and_counts_the_rest_as_false_accepts():
    p = np.zeros(2000, np.uint8)
    p[100:104] = 255   # inside the event below
    p[600:604] = 255   # no event there: a false accept
    s = StreamScores(p, step_s=0.03, first_end_s=0.05, events=[(2.5, 3.2), (40.0, 41.0)], seconds=3600.0)
    row = score([s], cutoff_u8(0.9), 1, 3, latency_s=1.0)
    assert (row["events"], row["false_rejects"], row["false_accepts"]) == (2, 1, 1)
    assert row["fa_per_hour"] == pytest.approx(1.0) and row["fa_per_hour_95"][1] == pytest.approx(5.5716, abs=1e-3)


def test_choose_takes_the_lowest_frr_within_the_target_and_says_when_none_is():
    rows = [{"cutoff_u8": c, "window": w, "frr": frr, "fa_per_hour": fa}
            for c, w, frr, fa in [(200, 3, 0.02, 2.0), (230, 3, 0.04, 0.4), (240, 5, 0.06, 0.1), (250, 5, 0.2, 0.0)]]
    best = choose(rows, 0.5)
    assert (best["cutoff_u8"], best["target_met"]) == (230, True)
    fallback = choose(rows[:1], 0.5)
    assert (fallback["cutoff_u8"], fallback["target_met"]) == (200, False)


def test_to_u8_is_the_uint8_output_quantization():
    assert to_u8(np.array([0.0, 0.5, 0.999, 1.0])).tolist() == [0, 128, 255, 255]
