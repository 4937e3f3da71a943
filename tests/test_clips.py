import cv2
import numpy as np
import pytest

from vadistill.data.clips import ClipDataset, FrameCache, batch_indices, clip_indices, load_frames
from vadistill.errors import InputError
from vadistill.types import VideoRef


def test_clip_indices_clamp_at_borders():
    assert clip_indices(10, 0, (-3, 0, 3)).tolist() == [0, 0, 3]
    assert clip_indices(10, 8, (-3, 0, 3)).tolist() == [5, 8, 9]
    assert clip_indices(10, np.array([1, 5]), (-3, 0, 3)).tolist() == [[0, 1, 4], [2, 5, 8]]


def _frame_folder(tmp_path, n=5, h=24, w=40):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(n):
        img = np.zeros((h, w, 3), dtype=np.uint8)
        img[..., 2] = 10 * i  # red channel in BGR order
        cv2.imwrite(str(folder / f"{i}.png"), img)
    return folder


def test_load_frames_from_folder_videoref_and_array(tmp_path):
    folder = _frame_folder(tmp_path)
    frames = load_frames(str(folder))
    assert frames.shape == (5, 24, 40, 3) and frames.dtype == np.uint8
    assert frames[3, 0, 0].tolist() == [30, 0, 0]  # RGB order
    small = load_frames(VideoRef("v", str(folder), 5), size=(12, 20))
    assert small.shape == (5, 12, 20, 3)
    assert load_frames(frames, size=(12, 20)).shape == (5, 12, 20, 3)
    with pytest.raises(InputError, match="dataset says 7"):
        load_frames(VideoRef("v", str(folder), 7))


def test_bad_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError):
        load_frames(np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(InputError):
        load_frames(str(tmp_path / "missing.avi"))


def test_frame_cache_decodes_once(tmp_path):
    folder = _frame_folder(tmp_path)
    cache = FrameCache()
    first = cache.get(str(folder), (12, 20))
    assert cache.get(str(folder), (12, 20)) is first
    assert cache.get(str(folder), None).shape == (5, 24, 40, 3)


def test_dataset_split_tail_and_items():
    videos = [np.zeros((20, 4, 4, 3), np.uint8), np.zeros((10, 4, 4, 3), np.uint8)]
    videos[0][:, 0, 0, 0] = np.arange(20)
    data = ClipDataset(videos, (-3, 0, 3))
    assert len(data) == 30
    train, val = data.split_tail(0.1)
    assert len(val) == 3 and len(train) == 27
    assert val.items.tolist() == [[0, 18], [0, 19], [1, 9]]
    clip, v, t = train[0]
    assert clip.shape == (3, 4, 4, 3) and (v, t) == (0, 0)
    assert clip[:, 0, 0, 0].tolist() == [0, 0, 3]
    clips, items = val.gather([0, 1])
    assert clips.shape == (2, 3, 4, 4, 3)
    assert clips[1, :, 0, 0, 0].tolist() == [16, 19, 19]


def test_batch_indices_are_seeded():
    a = [b.tolist() for b in batch_indices(10, 4, shuffle=True, seed=[1, 2])]
    b = [b.tolist() for b in batch_indices(10, 4, shuffle=True, seed=[1, 2])]
    assert a == b and sorted(sum(a, [])) == list(range(10))
    assert [len(x) for x in batch_indices(10, 4, shuffle=True, seed=0, drop_last=True)] == [4, 4]
    assert [x.tolist() for x in batch_indices(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]
