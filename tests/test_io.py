"""Atomic writes: results are readable by whoever the umask allows, and a failed write leaves nothing."""

import os
import stat

import pytest

from tuneval.errors import TunevalError
from tuneval.io import atomic_write_bytes, atomic_dir, atomic_write_json, atomic_write_text


@pytest.fixture
def umask():
    """Set a umask for one test; the process's own is restored after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_results_follow_the_umask(tmp_path, umask):
    """Another account (a service running `tuneval serve`) reads runs when the umask lets it, and not otherwise."""
    for mask, file_mode, dir_mode in [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)]:
        umask(mask)
        out = tmp_path / oct(mask)
        assert mode(atomic_write_text(out / "a.txt", "x")) == file_mode
        assert mode(atomic_write_json(out / "sub" / "m.json", {"a": 1})) == file_mode
        with atomic_dir(out / "adapter") as tmp:
            (tmp / "weights.bin").write_bytes(b"w")
        assert mode(out / "adapter") == dir_mode
        assert mode(out / "adapter" / "weights.bin") == file_mode


def test_replacing_or_failing_leaves_no_temp_names(tmp_path, umask):
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "a.txt").chmod(0o600)
    atomic_write_text(tmp_path / "a.txt", "new")
    assert mode(tmp_path / "a.txt") == 0o644  # the replacement is a new file: the umask decides
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "one").write_text("1")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "two").write_text("2")
    with pytest.raises(TypeError):  # fails inside the write, after the temp file exists
        atomic_write_bytes(tmp_path / "a.txt", "text, not bytes")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "half").write_text("h")
        raise RuntimeError("crash while saving")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_read_json_is_one_line_naming_the_file(tmp_path):
    from tuneval.io import read_json

    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text('{\n  "a": [1,\n}')
    with pytest.raises(TunevalError, match=r"^.*bad\.json:3: not valid JSON \(.*\)$"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(TunevalError, match=r"missing\.json: dataset_info file not found$"):
        read_json(tmp_path / "missing.json", "dataset_info file")
