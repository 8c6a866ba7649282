"""atomic_dir under faults and concurrency: no missing-folder window, no leftovers, no loss."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import storage
from tasks.storage import atomic_dir, clean_stale_temporaries
from tests.faults.conftest import REPO, snapshot


def _write(final: Path, label: str, files: int = 20) -> None:
    with atomic_dir(final) as tmp:
        for i in range(files):
            (tmp / f"part{i}.txt").write_text(f"{label} {i}\n" * 50)
        (tmp / "manifest.json").write_text(f'{{"writer": "{label}"}}')


def _writer(final: str, label: str, barrier: object, results: object) -> None:
    try:
        with atomic_dir(Path(final)) as tmp:
            for i in range(20):
                (tmp / f"part{i}.txt").write_text(f"{label} {i}\n" * 50)
            (tmp / "manifest.json").write_text(f'{{"writer": "{label}"}}')
            barrier.wait(timeout=30)  # type: ignore[attr-defined]  # all finish together
        results.put((label, "ok"))  # type: ignore[attr-defined]
    except BaseException as err:  # reported to the parent
        results.put((label, f"{type(err).__name__}: {err}"))  # type: ignore[attr-defined]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_all_succeed_without_leftovers(tmp_path, writers):
    final = tmp_path / "stage" / "2026-01-25"
    context = multiprocessing.get_context("fork")
    for _round in range(3):
        barrier = context.Barrier(writers)
        results = context.Queue()
        procs = [
            context.Process(target=_writer, args=(str(final), f"w{i}", barrier, results))
            for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        outcomes = sorted(results.get(timeout=5) for _ in procs)
        assert [o for _, o in outcomes] == ["ok"] * writers, outcomes
        winner = (final / "manifest.json").read_text()
        label = winner.split('"')[3]
        assert all(  # one complete writer's output, never a mix
            (final / f"part{i}.txt").read_text() == f"{label} {i}\n" * 50 for i in range(20)
        )
        assert _leftovers(final.parent) == []


def _poll_exists(final: str, stop: object, misses: object) -> None:
    count = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        if not os.path.exists(os.path.join(final, "manifest.json")):
            count += 1
    misses.value = count  # type: ignore[attr-defined]


def test_reader_never_finds_the_output_missing(tmp_path):
    """A reader process polls during 300 swaps (the old two-rename swap: ~100 misses here)."""
    final = tmp_path / "published" / "2026-01-25"
    _write(final, "first")
    context = multiprocessing.get_context("fork")
    stop, misses = context.Event(), context.Value("i", -1)
    reader = context.Process(target=_poll_exists, args=(str(final), stop, misses))
    reader.start()
    try:
        for i in range(300):
            _write(final, f"run{i}", files=1)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert misses.value == 0


def test_reader_never_finds_the_output_missing_without_renameat2(tmp_path, monkeypatch):
    """A folder published by renameat2, then 300 publishes on a file system without it.

    The first is the one-time conversion to the pointer layout; every later one is a single
    rename of a symlink, so a reader process polling meanwhile never misses the output (before
    the conversion existed each of them was the two-rename swap).
    """
    final = tmp_path / "published" / "2026-01-25"
    _write(final, "first")
    assert final.is_dir() and not final.is_symlink()

    def unsupported(source, target, flags):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(storage, "_renameat2", unsupported)
    _write(final, "converted")
    assert final.is_symlink()
    context = multiprocessing.get_context("fork")
    stop, misses = context.Event(), context.Value("i", -1)
    reader = context.Process(target=_poll_exists, args=(str(final), stop, misses))
    reader.start()
    try:
        for i in range(300):
            _write(final, f"run{i}", files=1)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert misses.value == 0
    assert (final / "manifest.json").read_text() == '{"writer": "run299"}'
    hidden = _leftovers(final.parent)  # the replaced versions, kept for the grace period
    assert len(hidden) == 301 and all(name.startswith(".2026-01-25.v-") for name in hidden)
    assert os.readlink(final) in hidden


def test_pointer_swap_fallback_keeps_paths_and_content(tmp_path, monkeypatch):
    """Without renameat2 (not Linux): the output path stays readable, old versions are removed."""
    monkeypatch.setattr(storage, "_renameat2", None)
    final = tmp_path / "stage" / "out"
    _write(final, "a")
    _write(final, "b")
    _write(final, "c")
    assert (final / "manifest.json").read_text() == '{"writer": "c"}'
    assert snapshot(final) == snapshot(final.resolve())
    hidden = _leftovers(final.parent)  # the live version and the two it replaced
    assert len(hidden) == 3 and all(name.startswith(".out.v-") for name in hidden)
    assert os.readlink(final) in hidden
    monkeypatch.setattr(storage, "_renameat2", storage._load_renameat2())
    _write(final, "d")  # back on renameat2: the symlink is exchanged, its version removed
    assert not final.is_symlink() and _leftovers(final.parent) == []


def test_failing_block_leaves_previous_output_byte_identical(tmp_path):
    final = tmp_path / "stage" / "out"
    _write(final, "good")
    before = snapshot(final)
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_dir(final) as tmp:
            (tmp / "part0.txt").write_text("half")
            raise RuntimeError("disk full")
    assert snapshot(final) == before and _leftovers(final.parent) == []


def test_enospc_while_writing_leaves_previous_output(tmp_path):
    """A full disk (RLIMIT_FSIZE in a child: writes past 64 KiB fail) keeps the last output."""
    final = tmp_path / "stage" / "out"
    _write(final, "good")
    before = snapshot(final)
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from tasks.storage import atomic_dir\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "with atomic_dir(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'big.bin').write_bytes(b'x' * 200_000)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(final)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          check=False)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert snapshot(final) == before and _leftovers(final.parent) == []


KILLED_WRITER = """
import sys, time
from pathlib import Path
from tasks.storage import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "part.txt").write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_killed_writer_temporary_is_removed_by_the_next_run(tmp_path):
    final = tmp_path / "stage" / "out"
    _write(final, "good")
    before = snapshot(final)
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(final)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    left = _leftovers(final.parent)
    assert len(left) == 1 and left[0].startswith(".out.tmp-")
    assert snapshot(final) == before  # the kill lost nothing
    _write(final, "next")
    assert _leftovers(final.parent) == []


def test_old_style_temporaries_removed_only_when_older_than_a_run(tmp_path):
    final = tmp_path / "stage" / "out"
    _write(final, "good")
    fresh = final.parent / ".out.tmp-1a2b3c4d"
    stale = final.parent / ".out.old-5e6f7a8b"
    for folder in (fresh, stale):
        folder.mkdir()
    old = time.time() - storage.STALE_TEMPORARY_AGE_S - 60
    os.utime(stale, (old, old))
    assert clean_stale_temporaries(final) == [stale]
    assert fresh.exists()  # may belong to a writer on another host: kept until it is old
