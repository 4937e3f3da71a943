import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from vadistill.data.pseudo import (HarvestConfig, ObjectBank, ObjectSequence, PasteConfig, paste_batch, paste_object,
                                   scene_object_scale, scene_object_speeds, scene_objects)
from vadistill.errors import InputError


def moving_blobs(num_frames=40, h=64, w=96, seed=0):
    """Static textured background with two bright discs walking across (a static camera scene)."""
    rng = np.random.default_rng(seed)
    background = (rng.normal(90, 8, size=(h, w, 1)).clip(0, 255) * np.ones(3)).astype(np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        for k, (x0, y0, vx) in enumerate([(5, 20, 1.5), (80, 45, -1.0)]):
            cv2.circle(frames[t], (int(x0 + vx * t), y0), 6, (220 - 60 * k,) * 3, -1)
    return frames


def test_harvest_finds_tracked_objects_with_masks():
    bank = ObjectBank.harvest([moving_blobs()], config=HarvestConfig(min_track_length=7))
    assert len(bank) >= 2
    for seq in bank.sequences:
        assert len(seq) >= 7
        for crop, mask in zip(seq.frames, seq.masks):
            assert crop.shape[:2] == mask.shape and mask.dtype == bool
            assert 0.3 < mask.mean() < 1.0  # a disc inside its box
            assert crop[mask].mean() > 150  # the bright object, not the background


def test_harvest_reads_a_generator_one_video_at_a_time(capsys):
    config = HarvestConfig(min_track_length=7)
    videos = [moving_blobs(seed=0), moving_blobs(seed=1)]

    def lazily():  # says on stderr when each video is handed out, between harvest's progress lines
        for index, frames in enumerate(videos):
            print(f"handing out {index}", file=sys.stderr)
            yield frames

    streamed = ObjectBank.harvest(lazily(), config=config, names=["a.avi", "b.avi"], progress=True)
    listed = ObjectBank.harvest(videos, config=config, names=["a.avi", "b.avi"])
    assert [s.source for s in streamed.sequences] == [s.source for s in listed.sequences]
    assert all(np.array_equal(a, b) for s, t in zip(streamed.sequences, listed.sequences)
               for a, b in zip(s.frames, t.frames))
    assert streamed.description == listed.description == "harvested from 2 video(s)"
    lines = capsys.readouterr().err.splitlines()
    # the second video is read only after the first one was harvested
    assert [line.split(":")[0] for line in lines] == ["handing out 0", "[bank] harvested 2 sequence(s) from video 1",
                                                      "handing out 1", "[bank] harvested 2 sequence(s) from video 2"]


def test_scene_object_scale_measures_the_moving_objects_height():
    # both discs have radius 6: 13 pixels tall in 64-pixel frames
    low, high = scene_object_scale([moving_blobs()], HarvestConfig(), every=1)
    assert 12 / 64 <= low <= high <= 14 / 64
    static = np.repeat(moving_blobs()[:1], 30, axis=0)
    with pytest.raises(InputError, match="no moving object"):
        scene_object_scale([static])


def test_scene_objects_finds_where_the_objects_move():
    heights, centres = scene_objects([moving_blobs()], HarvestConfig(), every=1)
    assert len(heights) == len(centres) > 0 and centres.shape[1] == 2
    # the discs walk along rows 20 and 45 of 64: every centre lies on one of the two paths
    assert np.all(np.minimum(np.abs(centres[:, 0] * 64 - 20), np.abs(centres[:, 0] * 64 - 45)) <= 1.5)
    assert centres[:, 1].min() >= 0 and centres[:, 1].max() <= 1


def test_scene_object_speeds_measures_how_far_the_objects_move():
    # the discs move 1.5 and 1.0 pixels per frame in 96-pixel-wide frames (integer circle centres: 1 or 2)
    speeds = scene_object_speeds([moving_blobs()], HarvestConfig())
    assert len(speeds) > 40 and np.all(speeds <= 2.01 / 96) and np.median(speeds) == pytest.approx(1 / 96)
    static = np.repeat(moving_blobs()[:1], 30, axis=0)
    with pytest.raises(InputError, match="no object tracked"):
        scene_object_speeds([static])


def test_paste_drift_speed_sets_how_far_the_object_travels():
    clip = np.full((3, 64, 96, 3), 50, np.uint8)
    seq = ObjectSequence(tuple([np.full((8, 8, 3), 255, np.uint8)] * 10), tuple([np.ones((8, 8), bool)] * 10))
    config = PasteConfig(scale=(0.125, 0.125), flip_probability=0.0, drift_speed=(0.05, 0.06))
    steps = []
    for seed in range(10):
        _, m = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(seed), config, centre=(0.5, 0.5))
        ends = [np.argwhere(k > 0).mean(axis=0) for k in m[[0, 2]]]  # (y, x) at t-3 and t+3
        steps.append((ends[1] - ends[0]) / 6)  # pixels per frame
    speeds = np.hypot(*np.transpose(steps))
    # 0.05-0.06 of the 96-pixel width per frame (integer pixel rounding), in directions all round
    assert 4.8 - 0.4 <= speeds.min() and speeds.max() <= 5.76 + 0.4
    assert len({(bool(dy > 0), bool(dx > 0)) for dy, dx in steps}) >= 3
    # the drift takes as many draws either way: at zero speed both give the same batch, so switching
    # drift_speed changes only the drift and leaves every other draw of a batch as it was
    clips, deltas = np.repeat(clip[None], 6, axis=0), np.tile([-3, 0, 3], (6, 1))
    still = paste_batch(clips, deltas, ObjectBank([seq]), np.random.default_rng(3), PasteConfig(probability=1.0, drift=0.0))
    zero = paste_batch(clips, deltas, ObjectBank([seq]), np.random.default_rng(3),
                       PasteConfig(probability=1.0, drift_speed=(0.0, 0.0)))
    assert all(np.array_equal(x, y) for x, y in zip(still, zero))
    assert PasteConfig.from_dict({"drift_speed": [0.01, 0.02]}).drift_speed == (0.01, 0.02)


def test_paste_at_a_given_centre():
    clip = np.full((3, 64, 96, 3), 50, np.uint8)
    seq = ObjectSequence(tuple([np.full((12, 12, 3), 255, np.uint8)] * 10), tuple([np.ones((12, 12), bool)] * 10))
    config = PasteConfig(scale=(0.2, 0.2), drift=0.0, flip_probability=0.0)
    _, masks = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(1), config, centre=(0.25, 0.75))
    ys, xs = np.nonzero(masks[1])
    assert abs(ys.mean() - 16) <= 1 and abs(xs.mean() - 72) <= 1
    _, corner = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(1), config, centre=(0.0, 1.0))
    ys, xs = np.nonzero(corner[1])  # a centre on the border: the object stays whole inside the frame
    assert ys.min() == 0 and xs.max() == 95 and corner[1].sum() == masks[1].sum()


def test_paste_shape_and_tone_changes_stretch_turn_and_brighten_the_object():
    clip = np.full((3, 96, 96, 3), 50, np.uint8)
    # a grey bar twice as tall as wide: 24 x 12 pixels pasted at height 0.25 x 96 = 24
    seq = ObjectSequence(tuple([np.full((24, 12, 3), 100, np.uint8)] * 10), tuple([np.ones((24, 12), bool)] * 10))
    plain = PasteConfig(scale=(0.25, 0.25), drift=0.0, flip_probability=0.0)

    def pasted(config, seed=0):
        out, masks = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(seed), config, centre=(0.5, 0.5))
        ys, xs = np.nonzero(masks[1])
        return out[1], masks[1], ys.max() - ys.min() + 1, xs.max() - xs.min() + 1

    _, masks, h, w = pasted(plain)
    assert (h, w) == (24, 12) and masks.sum() == 24 * 12
    _, masks, h, w = pasted(replace(plain, stretch=(3.0, 3.0)))  # only the width changes
    assert (h, w) == (24, 36) and masks.sum() == 24 * 36
    out, masks, _, _ = pasted(replace(plain, gain=(1.5, 1.5)))
    assert np.all(out[masks > 0] == 150) and np.all(out[masks == 0] == 50)  # a brighter object, the same scene
    aspects = []
    for seed in range(40):  # turns drawn in +-90 degrees
        _, masks, h, w = pasted(replace(plain, rotation=90.0), seed)
        aspects.append(h / w)
        assert masks.sum() == pytest.approx(24 * 12, rel=0.15)  # turned, not cut: the whole bar stays inside
    assert min(aspects) < 1 < max(aspects)  # some turns lay the tall bar on its side, some keep it up


def test_paste_shape_and_tone_changes_are_checked_and_off_by_default():
    assert PasteConfig().stretch == (1.0, 1.0) and PasteConfig().rotation == 0 and PasteConfig().gain == (1.0, 1.0)
    for bad in ({"stretch": (0.0, 2.0)}, {"stretch": (2.0, 1.0)}, {"gain": (-1.0, 1.0)}, {"rotation": -5.0}):
        with pytest.raises(ValueError, match="PasteConfig"):
            PasteConfig(**bad)
    assert PasteConfig.from_dict({"stretch": [0.5, 3.0]}).stretch == (0.5, 3.0)


@pytest.mark.parametrize("make, message", [
    (lambda: HarvestConfig(min_area=0.3, max_area=0.2), "harvest.min_area must be <= harvest.max_area"),
    (lambda: HarvestConfig(min_track_length=50), "harvest.min_track_length must be <= harvest.max_track_length"),
    (lambda: PasteConfig(scale=(0.6, 0.15)), r"paste.scale must be a range low <= high, got \(0.6, 0.15\)"),
    (lambda: PasteConfig(speed=(3, 1)), "paste.speed must be a range"),
    (lambda: PasteConfig(drift_speed=(0.05, 0.01)), "paste.drift_speed must be a range"),
])
def test_reversed_ranges_are_one_line_errors_naming_the_setting(make, message):
    # a reversed range used to pass silently (numpy's uniform draws from it) or fail inside training
    with pytest.raises(ValueError, match=message):
        make()


def test_equal_ends_and_unset_ranges_are_accepted():
    assert PasteConfig(scale=(0.3, 0.3), speed=(2, 2), drift_speed=None).scale == (0.3, 0.3)
    assert HarvestConfig(min_area=0.1, max_area=0.1, min_track_length=48).min_area == 0.1


def test_paste_batch_centres_every_object_on_one_of_the_given_centres():
    clips = np.full((16, 3, 64, 96, 3), 50, np.uint8)
    deltas = np.tile([-3, 0, 3], (16, 1))
    seq = ObjectSequence(tuple([np.full((12, 12, 3), 255, np.uint8)] * 10), tuple([np.ones((12, 12), bool)] * 10))
    config = PasteConfig(probability=1.0, scale=(0.2, 0.2), drift=0.0, flip_probability=0.0)
    centres = np.array([[0.25, 0.25], [0.75, 0.75]])
    _, maps, labels = paste_batch(clips, deltas, ObjectBank([seq]), np.random.default_rng(0), config, centres)
    assert labels.all()
    found = np.array([(ys.mean(), xs.mean()) for ys, xs in (np.nonzero(m[1]) for m in maps)])  # (16, 2) pixels
    nearest = np.abs(found[:, None] - centres[None] * [64, 96]).max(axis=2).argmin(axis=1)  # (16,)
    assert np.abs(found - centres[nearest] * [64, 96]).max() <= 1  # every object sits on a given centre
    assert set(nearest.tolist()) == {0, 1}  # and both centres are drawn
    # without centres the draws are unchanged by the new argument (earlier runs stay reproducible)
    a = paste_batch(clips, deltas, ObjectBank([seq]), np.random.default_rng(3), config)
    b = paste_batch(clips, deltas, ObjectBank([seq]), np.random.default_rng(3), config, None)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_paste_is_deterministic_and_consistent_over_time():
    clip = np.full((3, 64, 96, 3), 50, np.uint8)
    disc = np.zeros((12, 12, 3), np.uint8) + 255
    mask = np.zeros((12, 12), bool)
    cv2.circle(mask.view(np.uint8), (6, 6), 5, 1, -1)
    seq = ObjectSequence(tuple([disc] * 10), tuple([mask] * 10))
    config = PasteConfig(scale=(0.2, 0.2), drift=0.05, flip_probability=0.0)
    a, ma = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(7), config)
    b, mb = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(7), config)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert np.array_equal(clip, np.full_like(clip, 50))  # input untouched
    # pixels change where the mask says (plus a soft, anti-aliased rim); same size in every frame
    changed = (a != clip).any(axis=-1)
    assert changed[ma > 0].all()
    assert (changed & (ma == 0)).sum() < 0.6 * (ma > 0).sum()
    areas = ma.reshape(3, -1).sum(axis=1)
    assert areas.min() > 0 and areas.max() - areas.min() <= 0.35 * areas.max()
    # one linear trajectory: the object moves by equal steps between t-3, t and t+3
    checked = 0
    for seed in range(20):
        _, m = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(seed), config)
        if m[:, :, [0, -1]].any() or m[:, [0, -1], :].any():
            continue  # touches the border: clipped, centroid not comparable
        cx = [np.argwhere(k > 0)[:, 1].mean() for k in m]
        cy = [np.argwhere(k > 0)[:, 0].mean() for k in m]
        assert abs((cx[1] - cx[0]) - (cx[2] - cx[1])) <= 1.01  # integer pixel rounding
        assert abs((cy[1] - cy[0]) - (cy[2] - cy[1])) <= 1.01
        checked += 1
    assert checked >= 5


def test_paste_batch_probability_labels_and_clean_target():
    clips = np.repeat(moving_blobs(3)[None], 4, axis=0)
    bank = ObjectBank.harvest([moving_blobs()], config=HarvestConfig(min_track_length=7))
    deltas = np.tile([-3, 0, 3], (4, 1))
    out, maps, labels = paste_batch(clips, deltas, bank, np.random.default_rng(0), PasteConfig(probability=1.0))
    assert labels.tolist() == [1.0] * 4 and maps[:, 1].reshape(4, -1).any(axis=1).all()
    assert not np.array_equal(out, clips)
    out, maps, labels = paste_batch(clips, deltas, bank, np.random.default_rng(0), PasteConfig(probability=0.0))
    assert out is clips and labels.sum() == 0 and maps.sum() == 0
    out, _, labels = paste_batch(clips, deltas, None, np.random.default_rng(0))
    assert out is clips and labels.sum() == 0


def test_grey_clips_get_grey_objects():
    clip = np.full((3, 64, 96, 3), 50, np.uint8)
    crop = np.zeros((10, 10, 3), np.uint8)
    crop[..., 0] = 255  # pure red
    seq = ObjectSequence((crop,) * 7, (np.ones((10, 10), bool),) * 7)
    out, _ = paste_object(clip, [-3, 0, 3], seq, np.random.default_rng(0), PasteConfig())
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_bank_folder_round_trip_and_mask_pairs(tmp_path, monkeypatch):
    bank = ObjectBank.harvest([moving_blobs()], config=HarvestConfig(min_track_length=7))
    bank.save(tmp_path / "bank")
    loaded = ObjectBank.from_folder(tmp_path / "bank")
    assert len(loaded) == len(bank)
    assert np.array_equal(loaded[0].frames[0], bank[0].frames[0])
    assert np.array_equal(loaded[0].masks[0], bank[0].masks[0])
    # a run records the description and resume compares it: the same folder by a relative path reads the same
    monkeypatch.chdir(tmp_path)
    assert ObjectBank.from_folder("bank").description == loaded.description
    # the image + <k>_mask.png layout
    seq = tmp_path / "pairs" / "walker"
    seq.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(seq / f"{k}.jpg"), np.full((8, 6, 3), 200, np.uint8))
        cv2.imwrite(str(seq / f"{k}_mask.png"), np.full((8, 6), 255, np.uint8))
    pairs = ObjectBank.from_folder(tmp_path / "pairs")
    assert len(pairs) == 1 and len(pairs[0]) == 3 and pairs[0].masks[0].all()


def test_bank_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        ObjectBank.from_folder(tmp_path / "missing")
    seq = tmp_path / "bad" / "s"
    seq.mkdir(parents=True)
    cv2.imwrite(str(seq / "0.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="alpha channel"):
        ObjectBank.from_folder(tmp_path / "bad")
