"""The one atomic writer: the destination holds the old file or the whole new one, never part
of one, and a failed write leaves no temporary file behind."""

import os
import stat

import pytest

from keras_lrp.io.atomic import replace, write_atomically


def test_writes_the_bytes_with_ordinary_permissions(tmp_path):
    path = tmp_path / "f.bin"
    write_atomically(path, lambda h: h.write(b"abc"))
    assert path.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it"):
        write_atomically(tmp_path / "no" / "f.bin", lambda h: h.write(b"x"))


def test_replace_moves_a_finished_file_onto_the_destination(tmp_path):
    tmp, path = tmp_path / "f.tmp", tmp_path / "f"
    tmp.write_bytes(b"new")
    path.write_bytes(b"old")
    replace(tmp, path)
    assert path.read_bytes() == b"new" and not tmp.exists()
