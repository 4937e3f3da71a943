"""Object-level teachers and their multi-scale maps (vadistill.teachers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vadistill.data.synthetic import render_scene
from vadistill.objects import ObjectProposer
from vadistill.teachers import (AeTeacher, AeTeacherConfig, KnnTeacher, KnnTeacherConfig, ObjectTeacher, paint_map,
                                pool_maps, video_maps)

torch.set_num_threads(1)
OFFSETS = (-3, 0, 3)


def test_paint_map_takes_the_maximum_over_overlaps():
    boxes = np.array([[0, 0, 6, 4], [4, 2, 10, 8], [18, 12, 30, 30]])  # last one partly outside
    canvas = paint_map(boxes, np.array([1.0, 3.0, 2.0]), (16, 24))
    assert canvas.shape == (16, 24) and canvas.dtype == np.float32
    assert canvas[0, 0] == 1.0 and canvas[3, 5] == 3.0  # overlap of boxes 1 and 2 -> max
    assert canvas[1, 5] == 1.0 and canvas[7, 9] == 3.0 and canvas[8, 9] == 0.0
    assert canvas[15, 23] == 2.0  # clipped to the frame
    # a low score painted after a high one does not lower it
    assert paint_map(boxes[[1, 0]], np.array([3.0, 1.0]), (16, 24))[3, 5] == 3.0


def test_pool_maps_max_pools_to_every_scale():
    canvas = np.zeros((2, 32, 48), np.float32)
    canvas[0, 0:2, 0:3] = 5.0  # top-left cell of the 16x16 grid (cells are 2 x 3 pixels)
    canvas[0, 31, 47] = 2.0  # bottom-right pixel
    maps = pool_maps(canvas)
    assert {s: m.shape for s, m in maps.items()} == {1: (2, 1, 1), 4: (2, 4, 4), 16: (2, 16, 16)}
    assert maps[1][0, 0, 0] == 5.0 and maps[1][1].max() == 0.0
    assert maps[4][0, 0, 0] == 5.0 and maps[4][0, 3, 3] == 2.0 and maps[4][0].sum() == 7.0
    assert maps[16][0, 0, 0] == 5.0 and maps[16][0, 15, 15] == 2.0 and maps[16][0].sum() == 7.0
    single = pool_maps(canvas[0])
    assert single[16].shape == (16, 16)


class TinyBackbone(torch.nn.Module):
    """Stand-in for MobileNetV2 in unit tests: 48-d pooled colour statistics."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 4).flatten(1)


@pytest.fixture(scope="module")
def scene():
    train = [render_scene(90, seed=s).frames for s in (1, 2)]
    test = render_scene(90, cart_frames=(30, 60), seed=9)
    proposer = ObjectProposer().fit(train)
    boxes = [proposer.propose_video(v) for v in train]
    return train, boxes, test, proposer


@pytest.fixture(scope="module")
def knn(scene, tmp_path_factory):
    train, boxes, _, _ = scene
    teacher = KnnTeacher(KnnTeacherConfig(pca_dim=8), backbone=TinyBackbone())
    return teacher.fit(train, boxes, offsets=OFFSETS, val_fraction=0.1, run_dir=tmp_path_factory.mktemp("knn"))


def test_knn_teacher_scores_the_cart_above_clean_frames(scene, knn):
    _, _, test, proposer = scene
    maps = video_maps(knn, test.frames, proposer.propose_video(test.frames), OFFSETS)
    frame = maps["frame"]
    assert maps["m16"].shape == (90, 16, 16) and np.allclose(frame, maps["m16"].reshape(90, -1).max(1))
    cart, clean = frame[test.labels == 1], frame[test.labels == 0]
    assert np.median(cart) > np.percentile(clean, 90)


def test_knn_training_objects_are_scored_against_other_folds(scene, knn):
    train, boxes, _, _ = scene
    clips = train[0][[7, 10, 13]][None]
    own = knn.raw_scores(clips, np.array([[-3, 0, 3]]), [boxes[0][10]])[0]
    other = knn.raw_scores(clips, np.array([[-3, 0, 3]]), [boxes[0][10]], sources=[(0, 10)])[0]
    # the object itself (distance 0) is among its own neighbours unless its fold is left out
    assert len(own) and np.all(other > own)


def test_teachers_save_and_load_give_identical_scores(scene, knn, tmp_path):
    train, boxes, _, _ = scene
    ae = AeTeacher(AeTeacherConfig(epochs=2, widths=(8, 16, 16), latent=4))
    ae.fit(train, boxes, offsets=OFFSETS, val_fraction=0.1, run_dir=tmp_path / "ae")
    assert ae.scale_ > 0 and ae.norms_[0] > 0
    clips, deltas = train[1][[37, 40, 43]][None], np.array([[-3, 0, 3]])
    for teacher in (knn, ae):
        teacher.save(tmp_path / f"{teacher.name}.ckpt")
        again = ObjectTeacher.load(tmp_path / f"{teacher.name}.ckpt")
        if isinstance(again, KnnTeacher):
            again._backbone = knn._backbone
        np.testing.assert_allclose(again.scores(clips, deltas, [boxes[1][40]])[0],
                                   teacher.scores(clips, deltas, [boxes[1][40]])[0], rtol=1e-6)


def test_frames_without_objects_score_zero(knn):
    clips = np.zeros((1, 3, 144, 240, 3), np.uint8)
    maps = video_maps(knn, clips[0], [np.zeros((0, 4), np.int32)] * 3, OFFSETS)
    assert np.all(maps["frame"] == 0) and np.all(maps["m4"] == 0)
