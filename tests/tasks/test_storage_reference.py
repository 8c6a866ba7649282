"""Run keys and atomic publishing checked against what they must do (issue 19 mutants)."""

import ctypes
import datetime as dt
import errno
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import storage
from tasks.storage import (
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    clean_stale_temporaries,
    read_manifest,
    stage_dir,
    to_date,
    write_manifest,
)


class _NoOffset(dt.tzinfo):
    """A tzinfo that does not know its offset: the time counts as naive."""

    def utcoffset(self, moment):
        return None


def test_to_date_converts_offsets_to_the_utc_day(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # a local zone that is not UTC
    time.tzset()
    try:
        plus_two = dt.timezone(dt.timedelta(hours=2))
        assert to_date(dt.datetime(2026, 11, 26, 0, 30, tzinfo=plus_two)) == dt.date(2026, 11, 25)
        assert to_date("2026-11-26T00:30+02:00") == dt.date(2026, 11, 25)
        assert to_date("2026-11-25T23:30Z") == dt.date(2026, 11, 25)
        assert to_date(dt.datetime(2026, 11, 25, 23, 30)) == dt.date(2026, 11, 25)  # naive
        no_offset = dt.datetime(2026, 11, 25, 5, 30, tzinfo=_NoOffset())  # 24th 20:30 UTC
        assert to_date(no_offset) == dt.date(2026, 11, 25)  # taken as it is
        with pytest.raises(ValueError, match=r"such as 2026-11-25T06:00Z\)"):
            to_date("tomorrow")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("kind", ["use_case", "stage", "run_key"])
def test_stage_dir_names_the_bad_component(tmp_path, kind):
    parts = {"use_case": "polar", "stage": "predict", "run_key": "2026-11-25"}
    parts[kind] = "../escape"
    with pytest.raises(ValueError, match=rf"^{kind} name '\.\./escape'"):
        stage_dir(tmp_path, **parts)


def test_stage_dir_refuses_s3_roots():
    expected = (
        "stage_dir() builds local paths but data_root 's3://bucket/prefix' is on S3; use "
        "tasks.storage.stage_location() (and atomic_dir / read_manifest / resolve_stage_dir "
        "on the URL it returns)"
    )
    with pytest.raises(ValueError) as raised:
        stage_dir("s3://bucket/prefix", "polar", "predict", "2026-11-25")
    assert str(raised.value) == expected


def test_atomic_write_json_is_sorted_indented_and_stringifies(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "b" / "f.json", {"b": 1, "a": dt.date(2026, 1, 2)})
    assert path.read_text() == '{\n  "a": "2026-01-02",\n  "b": 1\n}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]


def test_atomic_write_bytes_creates_missing_parents(tmp_path):
    path = atomic_write_bytes(tmp_path / "x" / "y" / "z.bin", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_manifest_records_inputs_and_missing_manifest_message(tmp_path):
    write_manifest(tmp_path, stage="s", inputs={"scene": "a.zarr"}, config_hash="h")
    assert read_manifest(tmp_path)["inputs"] == {"scene": "a.zarr"}
    with pytest.raises(FileNotFoundError) as err:
        read_manifest(tmp_path / "none")
    assert str(err.value) == (
        f"{tmp_path / 'none'} has no manifest.json: it is not a complete eeflow stage output; "
        "re-run the stage that produces it"
    )


def _no_renameat2(monkeypatch, code=errno.EINVAL):
    def refuse(source, target, flags):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(storage, "_renameat2", refuse)


def test_real_folder_is_replaced_when_renameat2_is_unsupported(tmp_path, monkeypatch, caplog):
    final = tmp_path / "out"
    with atomic_dir(final) as d:  # published by renameat2: a real folder
        (d / "v").write_text("1")
    _no_renameat2(monkeypatch)
    with caplog.at_level(logging.INFO, logger="tasks.storage"):
        with atomic_dir(final) as d:  # swapped through two renames, the old folder removed
            (d / "v").write_text("2")
    assert caplog.messages[-1] == (
        f"converting {final} to the pointer layout (symlink to a version folder)"
    )
    assert (final / "v").read_text() == "2"
    live = os.readlink(final)  # converted to the pointer layout, the old folder removed
    assert live.startswith(".out.v-") and (tmp_path / live / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live])
    with atomic_dir(final) as d:  # from now on the one-rename pointer swap
        (d / "v").write_text("3")
    assert os.readlink(final) != live and (final / "v").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live, os.readlink(final)])


def test_failed_conversion_to_the_pointer_layout_puts_the_folder_back(tmp_path, monkeypatch):
    final = tmp_path / "out"
    with atomic_dir(final) as d:
        (d / "v").write_text("1")
    _no_renameat2(monkeypatch)

    class SwapFailed(Exception):
        pass

    def failing_replace(source, target):
        raise SwapFailed

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(SwapFailed):
        with atomic_dir(final) as d:
            (d / "v").write_text("2")
    monkeypatch.undo()
    assert not final.is_symlink() and (final / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_pointer_swap_when_renameat2_is_unsupported(tmp_path, monkeypatch, caplog):
    _no_renameat2(monkeypatch)
    final = tmp_path / "out"
    lives: list[str] = []
    for content in ("1", "2", "3"):
        with caplog.at_level(logging.INFO, logger="tasks.storage"):
            with atomic_dir(final) as d:
                (d / "v").write_text(content)
        assert caplog.messages[-1] == (
            f"renameat2 not supported for {final} ([Errno {errno.EINVAL}] "
            f"{os.strerror(errno.EINVAL)}): pointer swap"
        )
        caplog.clear()
        assert final.is_symlink() and (final / "v").read_text() == content
        lives.append(os.readlink(final))
        assert lives[-1].startswith(".out.v-")
        # the replaced versions stay, with their content, for RETIRED_VERSION_GRACE_S
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *lives])
        assert [(tmp_path / v / "v").read_text() for v in lives] == ["1", "2", "3"][: len(lives)]


def test_replaced_versions_are_deleted_once_out_of_use_for_the_grace(tmp_path, monkeypatch):
    _no_renameat2(monkeypatch)
    final = tmp_path / "out"
    lives = []
    for content in ("1", "2", "3"):
        with atomic_dir(final) as d:
            (d / "v").write_text(content)
        lives.append(os.readlink(final))
    expired = time.time() - storage.RETIRED_VERSION_GRACE_S - 5
    os.utime(tmp_path / lives[0], (expired, expired))
    recent = time.time() - storage.RETIRED_VERSION_GRACE_S + 30
    os.utime(tmp_path / lives[1], (recent, recent))
    os.utime(tmp_path / lives[2], (expired, expired))  # written long ago, live until now
    before = time.time()
    with atomic_dir(final) as d:
        (d / "v").write_text("4")
    live = os.readlink(final)
    assert (final / "v").read_text() == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *lives[1:], live])
    assert (tmp_path / lives[2]).stat().st_mtime >= before - 1  # retired now: its grace starts
    assert (tmp_path / lives[1]).stat().st_mtime == pytest.approx(recent)


def test_versions_lists_every_version_not_kept_nor_recent(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    cut = 1_000_000_000.0
    names = {f".out.v-h-1-{i:08x}": cut - 10 for i in range(12)}
    names[".out.v-h-1-0000000a"] = cut  # replaced exactly at the cut: still in its grace
    names[".out.v-h-1-0000000b"] = cut + 10
    for name, mtime in names.items():
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / ".out.tmp-h-1-00000000").mkdir()  # not a version
    (tmp_path / ".other.v-h-1-00000000").mkdir()  # another output's
    keep = (".out.v-h-1-00000003", ".out.v-h-1-00000007")
    expired = sorted(tmp_path / n for n, m in names.items() if m < cut and n not in keep)
    assert len(expired) == 8
    assert storage._versions(final, keep=keep, retired_before=cut) == expired
    every = sorted(tmp_path / n for n in names if n not in keep)
    assert storage._versions(final, keep=keep) == every


def test_zarr_array_refuses_a_group(tmp_path):
    import zarr

    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    root.create_group("sub")
    root.create_array("values", shape=(2,), dtype="u1")
    assert storage.zarr_array(root, "values").shape == (2,)
    with pytest.raises(TypeError, match=r"^'sub' of zarr store .*s\.zarr is a group, not an ar"):
        storage.zarr_array(root, "sub")


def test_other_rename_errors_are_raised_not_hidden(tmp_path, monkeypatch):
    _no_renameat2(monkeypatch, errno.EPERM)
    with pytest.raises(PermissionError):
        with atomic_dir(tmp_path / "out") as d:
            (d / "v").write_text("1")
    assert list(tmp_path.iterdir()) == []


def test_failed_pointer_swap_keeps_the_previous_version(tmp_path, monkeypatch):
    _no_renameat2(monkeypatch)
    final = tmp_path / "out"
    with atomic_dir(final) as d:
        (d / "v").write_text("1")
    live = os.readlink(final)

    class SwapFailed(Exception):
        pass

    def failing_replace(source, target):
        raise SwapFailed

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(SwapFailed):
        with atomic_dir(final) as d:
            (d / "v").write_text("2")
    monkeypatch.undo()
    assert os.readlink(final) == live and (final / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live])


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_clean_stale_temporaries_removes_exactly_the_abandoned(tmp_path, caplog):
    final = tmp_path / "out"
    host = storage._HOST
    old = time.time() - storage.STALE_TEMPORARY_AGE_S - 60
    live_version = tmp_path / ".out.v-otherhost-1-aaaa"
    live_version.mkdir()
    os.symlink(live_version.name, final)
    os.utime(live_version, (old, old))
    stale_version = tmp_path / ".out.v-otherhost-2-bbbb"
    stale_version.mkdir()
    os.utime(stale_version, (old, old))
    dead_dir = tmp_path / f".out.tmp-{host}-{_dead_pid()}-cccc"
    dead_dir.mkdir()
    dead_file = tmp_path / f".out.tmp-{host}-{_dead_pid()}-dddd"
    dead_file.write_text("partial")
    mine = tmp_path / f".out.tmp-{host}-{os.getpid()}-eeee"
    mine.mkdir()
    young_foreign = tmp_path / ".out.tmp-otherhost-99999999-ffff"  # no such pid here
    young_foreign.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        running = tmp_path / f".out.tmp-{host}-{sleeper.pid}-gggg"
        running.mkdir()
        with caplog.at_level(logging.WARNING, logger="tasks.storage"):
            removed = clean_stale_temporaries(final)
        with pytest.raises(subprocess.TimeoutExpired):  # only probed, never signalled
            sleeper.wait(timeout=1.0)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(removed) == sorted([stale_version, dead_dir, dead_file])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["out", live_version.name, mine.name, young_foreign.name, running.name])
    message = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert len(message) == 1
    assert message[0].startswith(f"removed 3 abandoned temporary folder(s) of {final}: [")
    assert all(p.name in message[0] for p in removed)


def test_a_vanished_temporary_is_not_abandoned(tmp_path):
    gone = tmp_path / ".out.tmp-otherhost-12-abcd"
    assert storage._is_abandoned(gone, ".out.tmp-", time.time()) is False


@pytest.mark.skipif(storage._load_renameat2() is None, reason="renameat2 needs Linux + glibc")
def test_renameat2_wrapper_exchanges_and_reports_errno_and_both_paths(tmp_path):
    # called directly: the module-level _renameat2 is loaded once at import time
    renameat2 = storage._load_renameat2()
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("1")
    second.write_text("2")
    ctypes.set_errno(0)  # the errno must come from this call, not an earlier one
    with pytest.raises(FileExistsError) as raised:
        renameat2(first, second, storage._RENAME_NOREPLACE)
    err = raised.value
    assert (err.errno, err.strerror) == (errno.EEXIST, os.strerror(errno.EEXIST))
    assert (err.filename, err.filename2) == (str(first), str(second))
    renameat2(first, second, storage._RENAME_EXCHANGE)
    assert (first.read_text(), second.read_text()) == ("2", "1")


def test_code_version_asks_git_about_the_checkout_then_falls_back(monkeypatch):
    import importlib.metadata

    calls = []

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout="abc1234\n", stderr="")

    monkeypatch.setattr(storage.subprocess, "run", fake_run)
    assert storage.code_version() == "abc1234"
    here = str(Path(storage.__file__).resolve().parent)
    assert calls == [(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                      {"capture_output": True, "text": True, "timeout": 5, "check": True})]

    def no_git(args, **kwargs):
        raise subprocess.CalledProcessError(128, args)

    monkeypatch.setattr(storage.subprocess, "run", no_git)
    assert storage.code_version() == importlib.metadata.version("eeflow")

    def not_installed(name):
        assert name == "eeflow"
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert storage.code_version() == "unknown"
