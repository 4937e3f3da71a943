"""Video IO: files, frame folders, streams, resizing, colour, and bad sources."""


import cv2
import numpy as np
import pytest

from vadistill.errors import InputError
from vadistill.io.video import list_frame_files, open_video, read_frames, write_video


def make_frames(num_frames=12, height=48, width=64):
    # Smooth gradients (JPEG keeps them) that differ per frame, so frames can be told apart.
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.stack([np.stack([(xs * 3 + t * 9) % 256, (ys * 4 + t * 5) % 256, np.full_like(xs, 128)], -1)
                       for t in range(num_frames)]).astype(np.uint8)
    frames[:, :8, :8] = [255, 0, 0]  # a red corner to check RGB order
    return frames


@pytest.mark.parametrize("extension", [".jpg", ".png", ".tif", ".bmp"])
def test_frame_folder_reads_in_natural_order_as_rgb(tmp_path, extension):
    frames = make_frames()
    for index, frame in enumerate(frames):  # unpadded names: natural order must still hold
        cv2.imwrite(str(tmp_path / f"{index}{extension}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert [p.stem for p in list_frame_files(tmp_path)] == [str(i) for i in range(12)]
    with open_video(tmp_path) as reader:
        assert reader.num_frames == 12 and reader.frame_size == (48, 64)
        frame = reader.read(7)
    tolerance = 12 if extension == ".jpg" else 0
    assert np.abs(frame.astype(int) - frames[7]).mean() <= tolerance
    assert frame[2, 2, 0] > 200 and frame[2, 2, 2] < 60  # red stays red: RGB, not BGR


def test_grey_frames_become_three_channels_and_resize(tmp_path):
    cv2.imwrite(str(tmp_path / "000.png"), np.full((40, 60), 77, np.uint8))
    frames = read_frames(tmp_path, size=(20, 30))
    assert frames.shape == (1, 20, 30, 3) and (frames == 77).all()


def test_video_file_random_access_matches_sequential(tmp_path):
    path = write_video(tmp_path / "clip.avi", make_frames(20), fps=10)
    with open_video(path) as reader:
        assert reader.num_frames == 20 and reader.fps == pytest.approx(10)
        everything = reader.read_all()
        assert np.array_equal(reader.read(13), everything[13])
        assert np.array_equal(reader.read(2), everything[2])


def test_missing_empty_and_corrupt_sources_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no such video"):
        open_video(tmp_path / "absent.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_video(tmp_path / "empty.avi")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="garbage.mp4"):
        open_video(tmp_path / "garbage.mp4")
    (tmp_path / "frames").mkdir()
    with pytest.raises(InputError, match="found none"):
        open_video(tmp_path / "frames")


def test_corrupt_frame_in_folder_is_reported_with_its_path(tmp_path):
    for index, frame in enumerate(make_frames(3)):
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), frame)
    (tmp_path / "001.png").write_bytes(b"\x89PNG broken")
    with open_video(tmp_path) as reader:
        with pytest.raises(InputError, match="001.png"):
            reader.read_all()


def test_truncated_video_is_read_up_to_the_damage_or_rejected(tmp_path):
    path = write_video(tmp_path / "clip.avi", make_frames(30), fps=10)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    try:
        with open_video(truncated) as reader:
            frames = reader.read_all()
        assert 0 < len(frames) < 30  # the count comes from decoding, so indexing stays truthful
    except InputError as error:
        assert "truncated.avi" in str(error)


@pytest.mark.parametrize("source", ["rtsp://127.0.0.1:1/stream", "http://127.0.0.1:1/video.mjpg", "97"])
def test_unreachable_streams_and_webcams_fail_with_one_line(source):
    with pytest.raises(InputError) as error:
        open_video(source)
    assert "\n" not in str(error.value) and str(source) in str(error.value)
