import numpy as np
import torch

from vadistill.data.motion import motion_token_weights, temporal_gradient


def test_hand_computed_example_from_the_docstring():
    g = torch.zeros(1, 1, 4, 4)
    g[0, 0, 0, 0] = 10
    g[0, 0, 3, 3] = 30
    w = motion_token_weights(g, patch_size=2)
    assert torch.allclose(w, torch.tensor([[0.25, 0.0, 0.0, 0.75]]))


def test_channel_mean_of_patch_maxima():
    g = torch.zeros(1, 3, 2, 4)  # two tokens of 2x2
    g[0, 0, 0, 0] = 6  # token 0: channel maxima (6, 0, 0) -> mean 2
    g[0, 1, 1, 3] = 3  # token 1: channel maxima (0, 3, 0) -> mean 1
    g[0, 2, 0, 2] = 3  #          and (0, 3, 3) -> mean 2
    w = motion_token_weights(g, patch_size=2)
    assert torch.allclose(w, torch.tensor([[0.5, 0.5]]))


def test_anomaly_map_counts_as_at_least_min_magnitude():
    g = torch.zeros(1, 1, 2, 4)
    g[0, 0, 0, 0] = 64  # token 0 moves a little
    amap = torch.zeros(1, 1, 2, 4)
    amap[0, 0, 1, 3] = 1.0  # a pasted pixel in token 1: counts max(128, 64) = 128
    w = motion_token_weights(g, patch_size=2, anomaly_map=amap, min_anomaly_magnitude=128)
    assert torch.allclose(w, torch.tensor([[64 / 192, 128 / 192]]))
    g[0, 0, 0, 0] = 200  # strong motion elsewhere: the pasted pixel counts as much as the peak
    w = motion_token_weights(g, patch_size=2, anomaly_map=amap, min_anomaly_magnitude=128)
    assert torch.allclose(w, torch.tensor([[0.5, 0.5]]))


def test_static_clip_gives_uniform_weights_not_nan():
    frame = np.full((1, 3, 8, 8), 77, dtype=np.uint8)
    g = temporal_gradient(frame, frame)
    w = motion_token_weights(g, patch_size=4)
    assert torch.isfinite(w).all()
    assert torch.allclose(w, torch.full((1, 4), 0.25))


def test_temporal_gradient_is_absolute_difference_without_uint8_wraparound():
    a = np.array([[10, 200]], dtype=np.uint8)
    b = np.array([[30, 100]], dtype=np.uint8)
    assert torch.equal(temporal_gradient(a, b), torch.tensor([[20.0, 100.0]]))


def test_rows_sum_to_one_per_sample_and_samples_are_independent():
    g = torch.rand(3, 3, 16, 32) * 255
    g[1] = 0  # a static sample in the batch
    w = motion_token_weights(g, patch_size=8)
    assert w.shape == (3, 8)
    assert torch.allclose(w.sum(dim=1), torch.ones(3))
    assert torch.allclose(w[1], torch.full((8,), 1 / 8))
