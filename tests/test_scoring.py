"""Temporal filters, normalisation, thresholds and segments."""

from __future__ import annotations

import numpy as np
import pytest

from vadistill import scoring
from vadistill.types import Segment


def test_gaussian_keeps_a_constant_constant_even_at_the_ends():
    smoothed = scoring.gaussian_smooth(np.full(50, 3.5), sigma=4)
    assert smoothed == pytest.approx(np.full(50, 3.5))


def test_gaussian_impulse_response_sums_to_one_and_is_centred():
    impulse = np.zeros(101)
    impulse[50] = 1.0
    response = scoring.gaussian_smooth(impulse, sigma=3)
    assert response.sum() == pytest.approx(1.0)
    assert int(np.argmax(response)) == 50
    assert response[50 - 5] == pytest.approx(response[50 + 5])  # symmetric: no delay


def test_gaussian_sigma_zero_and_filter_none_are_identity():
    scores = np.array([1.0, 5.0, 2.0])
    assert scoring.gaussian_smooth(scores, 0) == pytest.approx(scores)
    assert scoring.smooth(scores, scoring.NO_FILTER) == pytest.approx(scores)
    with pytest.raises(ValueError, match="1-D"):
        scoring.smooth(np.zeros((2, 2)), scoring.NO_FILTER)


def test_smooth_dispatches_on_the_filter_kind():
    scores = np.random.default_rng(0).random(40)
    gaussian = scoring.TemporalFilter(kind="gaussian", sigma=2.0)
    assert scoring.smooth(scores, gaussian) == pytest.approx(scoring.gaussian_smooth(scores, 2.0))
    official = scoring.official_filter("fast-aed")
    assert scoring.smooth(scores, official) == pytest.approx(scoring.aed_official_smooth(scores, 21, 302))


def test_official_kernel_is_unnormalised_and_one_tap_off_centre():
    kernel = scoring.official_kernel(sigma=282, support=900)
    assert len(kernel) == 899
    assert int(np.argmax(kernel)) == 448  # middle tap is 449
    assert kernel.sum() == pytest.approx(0.889, abs=0.002)  # the support covers only +-1.6 sigma


def test_official_filter_keeps_length_lags_one_frame_and_zero_pads():
    impulse = np.zeros(1000)
    impulse[500] = 1.0
    response = scoring.aed_official_smooth(impulse, sigma=21, support=302)
    assert response.shape == impulse.shape
    assert int(np.argmax(response)) == 501
    assert response.sum() == pytest.approx(scoring.official_kernel(21, 302).sum())
    # zero padding: a constant signal sags at both ends
    flat = scoring.aed_official_smooth(np.ones(600), sigma=21, support=302)
    assert flat[0] < 0.6 and flat[-1] < 0.6 and flat[300] == pytest.approx(1.0, abs=1e-3)


def test_official_filter_presets_and_validation():
    assert set(scoring.OFFICIAL_FILTERS) == {"aed-mae-shanghai", "aed-mae-avenue", "fast-aed"}
    with pytest.raises(ValueError, match="even support"):
        scoring.TemporalFilter(kind="aed_official", sigma=5, support=31)
    with pytest.raises(ValueError, match="unknown filter kind"):
        scoring.TemporalFilter(kind="median")
    with pytest.raises(ValueError, match="unknown official filter"):
        scoring.official_filter("mnad")


def test_every_filter_describes_itself():
    assert scoring.NO_FILTER.describe().startswith("none")
    gaussian = scoring.TemporalFilter(kind="gaussian", sigma=3).describe()
    assert "sigma=3" in gaussian and "reflect" in gaussian
    official = scoring.official_filter("aed-mae-shanghai").describe()
    assert "sigma=282" in official and "range=900" in official and "zero padding" in official


def test_normalize_per_video_minmax():
    normalised = scoring.normalize_per_video({"a": np.array([2.0, 4.0, 3.0]), "b": np.array([7.0, 7.0])})
    assert normalised["a"] == pytest.approx([0.0, 1.0, 0.5])
    assert normalised["b"] == pytest.approx([0.0, 0.0])  # constant video -> 0, as the official code
    assert scoring.normalize_per_video(np.array([1.0, 2.0]), "none") == pytest.approx([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown normalisation"):
        scoring.normalize_per_video(np.array([1.0]), "zscore")


def test_calibrate_threshold_is_a_quantile_of_normal_scores():
    assert scoring.calibrate_threshold(np.arange(101.0), quantile=0.99) == pytest.approx(99.0)
    per_video = {"a": np.arange(50.0), "b": np.arange(50.0, 101.0)}
    assert scoring.calibrate_threshold(per_video, quantile=0.5) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="NaN"):
        scoring.calibrate_threshold(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="quantile"):
        scoring.calibrate_threshold(np.arange(3.0), quantile=0)


def test_threshold_decides_strictly_above():
    threshold = scoring.Threshold.from_normal_scores(np.arange(101.0), quantile=0.99)
    assert threshold.num_normal_frames == 101
    assert threshold.decide(np.array([98.0, 99.0, 99.5])).tolist() == [False, False, True]
    assert "quantile 0.99" in threshold.describe()


FRAME_SCORES = np.array([0, 5, 5, 0, 0, 6, 0, 7, 9, 7], dtype=float)


def test_find_segments_hand_cases():
    assert scoring.find_segments(FRAME_SCORES, 1) == [
        Segment(1, 2, 1, 5.0),  # tie: first frame of the peak
        Segment(5, 5, 5, 6.0),
        Segment(7, 9, 8, 9.0),
    ]
    # frames 3-4 (gap 2) stay apart; frame 6 (gap 1) is bridged
    assert scoring.find_segments(FRAME_SCORES, 1, merge_gap=1) == [Segment(1, 2, 1, 5.0), Segment(5, 9, 8, 9.0)]
    assert scoring.find_segments(FRAME_SCORES, 1, min_length=3) == [Segment(7, 9, 8, 9.0)]
    assert scoring.find_segments(FRAME_SCORES, 5) == [Segment(5, 5, 5, 6.0), Segment(7, 9, 8, 9.0)]  # strict
    assert scoring.find_segments(FRAME_SCORES, 100) == []
    assert scoring.find_segments(np.ones(4), 0) == [Segment(0, 3, 0, 1.0)]


def test_find_segments_validates_arguments():
    with pytest.raises(ValueError, match="min_length"):
        scoring.find_segments(FRAME_SCORES, 1, min_length=0)
    with pytest.raises(ValueError, match="merge_gap"):
        scoring.find_segments(FRAME_SCORES, 1, merge_gap=-1)
