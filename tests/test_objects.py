"""Object proposals and crops (vadistill.objects)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from vadistill.data.synthetic import render_scene
from vadistill.errors import InputError
from vadistill.objects import (HogPeopleDetector, ObjectProposer, OnnxDetector, ProposalConfig, boxes_from_mask,
                               crop_clip, expand_boxes, motion_gradient_crops, nms)

torch.set_num_threads(1)


def _mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


@pytest.fixture(scope="module")
def scene():
    normal = render_scene(60, seed=3).frames
    test = render_scene(60, cart_frames=(20, 40), seed=4)
    return normal, test


@pytest.mark.parametrize("detector", ["background", "mog2"])
def test_background_subtraction_finds_the_moving_cart(scene, detector):
    normal, test = scene
    proposer = ObjectProposer(ProposalConfig(detector=detector)).fit([normal])
    t = 30
    boxes = proposer.propose(test.frames[t])
    assert boxes.dtype == np.int32 and boxes.shape[1] == 4
    mask = test.masks[t]
    truth = _mask_box(mask)
    area = (truth[2] - truth[0]) * (truth[3] - truth[1])
    # some box holds most of the cart's pixels and is not much larger than the cart (margin, a passer-by)
    covered = [mask[y0:y1, x0:x1].sum() / mask.sum() for x0, y0, x1, y1 in boxes
               if (x1 - x0) * (y1 - y0) <= 4 * area]
    assert max(covered) > 0.9


def test_static_background_gives_no_box():
    frames = np.full((10, 60, 80, 3), 120, np.uint8)
    proposer = ObjectProposer().fit([frames])
    assert len(proposer.propose(frames[0])) == 0


def test_boxes_from_mask_respects_area_bounds():
    mask = np.zeros((50, 50), np.uint8)
    mask[5:15, 5:15] = 1  # 100 px
    mask[30:32, 30:32] = 1  # 4 px
    boxes = boxes_from_mask(mask, min_pixels=10, max_pixels=1000)
    assert boxes.tolist() == [[5, 5, 15, 15]]


def test_expand_boxes_and_nms():
    boxes = expand_boxes(np.array([[10, 10, 20, 30]]), 0.5, 35, 100)
    assert boxes.tolist() == [[5, 0, 25, 35]]  # clipped to the frame
    keep = nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.8, 0.1]), 0.5)
    assert keep.tolist() == [0, 2]


def test_crops_and_motion_gradients():
    clip = np.zeros((3, 40, 40, 3), np.uint8)
    clip[1, 10:20, 10:20] = 200  # a square only in the middle frame
    boxes = np.array([[5, 5, 25, 25], [30, 30, 40, 40]])
    crops = crop_clip(clip, boxes, 16)
    assert crops.shape == (2, 3, 16, 16, 3) and crops.dtype == np.uint8
    assert crops[0, 1].max() == 200 and crops[0, 0].max() == 0
    grads = motion_gradient_crops(clip, boxes, 16)
    assert grads.shape == (2, 2, 16, 16) and grads.dtype == np.float32
    assert grads[0].max() > 0.5 and grads[1].max() == 0  # only the box with the change moves
    assert motion_gradient_crops(np.repeat(clip[:1], 3, 0), boxes, 16).max() == 0


def test_hog_detector_returns_boxes_and_scores(scene):
    boxes, scores = HogPeopleDetector(upscale=1.0)(scene[0][0])
    assert boxes.shape[1] == 4 and len(boxes) == len(scores)


def test_onnx_detector_without_onnxruntime_is_a_clear_input_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(InputError, match="onnxruntime"):
        OnnxDetector(tmp_path / "model.onnx")
    with pytest.raises(InputError, match="onnxruntime"):
        ObjectProposer(ProposalConfig(detector="onnx", onnx_model=str(tmp_path / "model.onnx")))


def test_onnx_detector_missing_model_file(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(InputError, match="no such ONNX model"):
        OnnxDetector(tmp_path / "model.onnx")
