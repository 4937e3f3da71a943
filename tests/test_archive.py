"""Safe unpacking: hostile archives are refused and write nothing; normal ones unpack completely."""

from __future__ import annotations

import errno
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from vadistill.data.archive import STAGING_PREFIX, is_archive, unpack_archive
from vadistill.errors import InputError


def add_tar_file(tar: tarfile.TarFile, name: str, data: bytes = b"payload") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_tar_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def make_tar(path: Path, build, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        build(tar)
    return path


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in entries.items():
            zipped.writestr(name, data)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """(folder holding the archives, destination) with the destination nested two levels deep,
    so that an escape through '..' would land in tmp_path where the test can see it."""
    archives = tmp_path / "archives"
    archives.mkdir()
    return archives, tmp_path / "data" / "dataset"


def assert_nothing_written(tmp_path: Path, destination: Path) -> None:
    leftovers = [p for p in destination.rglob("*")] if destination.exists() else []
    assert leftovers == [], f"unexpected files after a refused unpack: {leftovers}"
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "evil").exists()


NORMAL_TREE = {"root/a.txt": b"alpha", "root/sub/b.txt": b"beta", "root/sub/deeper/c.bin": bytes(range(256))}


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"),
                                          (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_normal_tar_unpacks(workspace, suffix, mode):
    archives, destination = workspace

    def build(tar):
        for name, data in NORMAL_TREE.items():
            add_tar_file(tar, name, data)

    archive = make_tar(archives / f"normal{suffix}", build, mode)
    assert is_archive(archive)
    top = unpack_archive(archive, destination, progress=False)
    assert top == [destination / "root"]
    for name, data in NORMAL_TREE.items():
        assert (destination / name).read_bytes() == data
    assert not any(p.name.startswith(STAGING_PREFIX) for p in destination.iterdir())


def test_normal_zip_unpacks(workspace):
    archives, destination = workspace
    archive = make_zip(archives / "normal.zip", NORMAL_TREE)
    unpack_archive(archive, destination, progress=False)
    for name, data in NORMAL_TREE.items():
        assert (destination / name).read_bytes() == data
    assert sorted(p.name for p in destination.iterdir()) == ["root"]


def test_internal_symlink_is_kept(workspace):
    archives, destination = workspace

    def build(tar):
        add_tar_file(tar, "root/real.txt", b"x")
        add_tar_link(tar, "root/alias.txt", "real.txt")

    unpack_archive(make_tar(archives / "links.tar", build), destination, progress=False)
    assert (destination / "root" / "alias.txt").is_symlink()
    assert (destination / "root" / "alias.txt").read_bytes() == b"x"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink_up", "symlink_absolute", "hardlink_up",
                                  "through_symlink", "device", "fifo"])
@pytest.mark.parametrize("with_data_filter", [True, False], ids=["filter", "no-filter"])
def test_hostile_tar_is_refused(workspace, tmp_path, monkeypatch, case, with_data_filter):
    archives, destination = workspace
    if not with_data_filter:
        # Python 3.10 (before 3.10.12) has no extraction filters: our own checks must suffice.
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def build(tar):
        add_tar_file(tar, "root/fine.txt")  # a harmless member first: it must not be left behind
        if case == "dotdot":
            add_tar_file(tar, "../../evil")
        elif case == "absolute":
            add_tar_file(tar, str(tmp_path / "evil"))
        elif case == "symlink_up":
            add_tar_link(tar, "root/escape", "../../../evil")
        elif case == "symlink_absolute":
            add_tar_link(tar, "root/escape", str(tmp_path))
        elif case == "hardlink_up":
            add_tar_link(tar, "root/escape", "../evil", kind=tarfile.LNKTYPE)
        elif case == "through_symlink":
            # A link that stays inside, then a member written through it: refused because the
            # link's real target is only known on disk (this is how link chains escape).
            add_tar_link(tar, "root/inner", "..")
            add_tar_file(tar, "root/inner/evil")
        elif case == "device":
            info = tarfile.TarInfo("root/dev")
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info)
        elif case == "fifo":
            info = tarfile.TarInfo("root/pipe")
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)

    archive = make_tar(archives / f"{case}.tar", build)
    with pytest.raises(InputError) as raised:
        unpack_archive(archive, destination, progress=False)
    assert raised.value.path == str(archive)
    assert "refusing to unpack" in raised.value.problem
    assert_nothing_written(tmp_path, destination)


@pytest.mark.parametrize("name", ["../../evil", "/tmp/vadistill-evil-absolute", "..\\..\\evil", "C:/evil"])
def test_hostile_zip_is_refused(workspace, tmp_path, name):
    archives, destination = workspace
    archive = make_zip(archives / "evil.zip", {"root/fine.txt": b"ok", name: b"evil"})
    with pytest.raises(InputError, match="refusing to unpack"):
        unpack_archive(archive, destination, progress=False)
    assert_nothing_written(tmp_path, destination)
    assert not Path("/tmp/vadistill-evil-absolute").exists()


def test_zip_symlink_escaping_is_refused(workspace, tmp_path):
    archives, destination = workspace
    archive = archives / "link.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        info = zipfile.ZipInfo("root/escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(info, "../../../evil")
    with pytest.raises(InputError, match="symlink"):
        unpack_archive(archive, destination, progress=False)
    assert_nothing_written(tmp_path, destination)


def test_truncated_tar_gz_names_the_archive(workspace):
    archives, destination = workspace

    def build(tar):
        for index in range(20):
            add_tar_file(tar, f"root/{index}.bin", bytes(range(256)) * 400 + bytes([index]))

    archive = make_tar(archives / "whole.tar.gz", build, "w:gz")
    truncated = archives / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InputError) as raised:
        unpack_archive(truncated, destination, progress=False)
    assert raised.value.path == str(truncated)
    assert "corrupt or truncated" in raised.value.problem
    # What was unpacked before the damage must not look like a finished unpack.
    assert list(destination.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_zip_names_the_archive(workspace, damage):
    archives, destination = workspace
    whole = make_zip(archives / "whole.zip", NORMAL_TREE).read_bytes()
    broken = archives / "broken.zip"
    broken.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"not a zip at all" * 10)
    with pytest.raises(InputError) as raised:
        unpack_archive(broken, destination, progress=False)
    assert raised.value.path == str(broken)


def test_missing_archive(workspace):
    archives, destination = workspace
    with pytest.raises(InputError, match="no such archive"):
        unpack_archive(archives / "absent.tar", destination)


def test_include_keeps_only_the_named_folder(workspace):
    archives, destination = workspace

    def build(tar):
        add_tar_file(tar, "./Top/Ped1/x.tif")
        add_tar_file(tar, "./Top/Ped2/y.tif")
        add_tar_file(tar, "./Top/Ped22/z.tif")  # a prefix of the name, not a parent folder

    archive = make_tar(archives / "ucsd.tar", build)
    unpack_archive(archive, destination, include=("Top/Ped2",), progress=False)
    assert sorted(str(p.relative_to(destination)) for p in destination.rglob("*.tif")) == ["Top/Ped2/y.tif"]


def test_include_without_match_unpacks_everything(workspace):
    archives, destination = workspace
    archive = make_zip(archives / "other.zip", NORMAL_TREE)
    unpack_archive(archive, destination, include=("UCSD_Anomaly_Dataset.v1p2/UCSDped2",), progress=False)
    assert all((destination / name).is_file() for name in NORMAL_TREE)


def test_second_archive_merges_into_the_same_folder(workspace):
    archives, destination = workspace
    unpack_archive(make_zip(archives / "one.zip", {"ped2/training/a.jpg": b"a"}), destination, progress=False)
    unpack_archive(make_zip(archives / "two.zip", {"ped2/testing/b.jpg": b"b"}), destination, progress=False)
    assert (destination / "ped2/training/a.jpg").read_bytes() == b"a"
    assert (destination / "ped2/testing/b.jpg").read_bytes() == b"b"


def test_read_only_folders_become_writable(workspace):
    archives, destination = workspace

    def build(tar):
        info = tarfile.TarInfo("root")
        info.type, info.mode = tarfile.DIRTYPE, 0o555
        tar.addfile(info)
        add_tar_file(tar, "root/file.txt")

    unpack_archive(make_tar(archives / "readonly.tar", build), destination, progress=False)
    (destination / "root" / "new.txt").write_text("later steps write here")


def test_disk_full_removes_the_partial_unpack(workspace, monkeypatch):
    archives, destination = workspace

    def build(tar):
        for index in range(5):
            add_tar_file(tar, f"root/{index}.bin")

    archive = make_tar(archives / "big.tar", build)
    calls = {"count": 0}
    real_copy = tarfile.copyfileobj

    def copy_until_full(*args, **kwargs):  # the third file hits a full disk
        calls["count"] += 1
        if calls["count"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(tarfile, "copyfileobj", copy_until_full)
    with pytest.raises(InputError, match="disk full"):
        unpack_archive(archive, destination, progress=False)
    assert list(destination.iterdir()) == []
