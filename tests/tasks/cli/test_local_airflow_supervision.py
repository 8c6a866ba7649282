"""LocalAirflow restarts a service that exits once the stack is up, and gives up on one that keeps
exiting (Airflow's scheduler ends on transient DB errors such as a StaleDataError race on SQLite).

The services are stand-ins: a script in place of the ``airflow`` executable that appends its
arguments to a file and then sleeps, or exits with a given status.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tasks.cli import local_airflow
from tasks.cli.local_airflow import AirflowRunError, LocalAirflow

FAKE_AIRFLOW = """#!/bin/sh
echo "$1" >> "{calls}"
echo "service $1 says: StaleDataError in the scheduler loop"
case "$1" in
  {dying}) exit 1 ;;
esac
exec sleep 60
"""


def _stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dying: str) -> tuple[LocalAirflow,
                                                                                   Path]:
    calls = tmp_path / "calls.txt"
    exe = tmp_path / "airflow"
    exe.write_text(FAKE_AIRFLOW.format(calls=calls, dying=dying))
    exe.chmod(0o755)
    monkeypatch.setattr(local_airflow, "_airflow_exe", lambda: str(exe))
    af = LocalAirflow(tmp_path / "home", port=1, services=("scheduler", "triggerer"))
    af.log_dir.mkdir(parents=True)
    for name in af.services:
        af._spawn(name)
    return af, calls


def _wait_exit(af: LocalAirflow, name: str) -> int:
    proc = af._procs[name]
    deadline = time.monotonic() + 20
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"{name} stand-in did not exit"
        time.sleep(0.05)
    return proc.returncode


def test_an_exited_service_is_restarted_once_the_stack_is_up(tmp_path, monkeypatch, caplog):
    af, calls = _stack(tmp_path, monkeypatch, dying="scheduler")
    try:
        af._started = True
        first = af._procs["scheduler"]
        assert _wait_exit(af, "scheduler") == 1
        with caplog.at_level("WARNING", logger="tasks.cli.local_airflow"):
            af.check_services()
        assert af._procs["scheduler"] is not first  # a new process
        assert af._procs["triggerer"].poll() is None  # the running one is left alone
        deadline = time.monotonic() + 20  # the new process writes its call when it starts
        while len(calls.read_text().split()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(calls.read_text().split()) == ["scheduler", "scheduler", "triggerer"]
        message = caplog.text
        assert "airflow scheduler exited with 1; restarting it (1 of at most 5" in message
        assert "StaleDataError" in message  # the tail of its log is shown
    finally:
        af.stop()


def test_a_service_that_keeps_exiting_is_an_error(tmp_path, monkeypatch):
    af, _ = _stack(tmp_path, monkeypatch, dying="scheduler")
    monkeypatch.setattr(LocalAirflow, "MAX_RESTARTS", 2)
    try:
        af._started = True
        for _ in range(2):
            _wait_exit(af, "scheduler")
            af.check_services()
        _wait_exit(af, "scheduler")
        with pytest.raises(AirflowRunError, match=r"airflow scheduler exited with 1 \(3 times in "
                                                  r"600 s\):\n.*StaleDataError"):
            af.check_services()
    finally:
        af.stop()


def test_an_exit_during_start_up_is_an_error_at_once(tmp_path, monkeypatch):
    af, calls = _stack(tmp_path, monkeypatch, dying="triggerer")
    try:
        _wait_exit(af, "triggerer")
        with pytest.raises(AirflowRunError, match=r"airflow triggerer exited with 1:\n"):
            af.check_services()
        time.sleep(0.3)
        assert sorted(calls.read_text().split()) == ["scheduler", "triggerer"]  # not restarted
    finally:
        af.stop()


def test_restarts_outside_the_window_do_not_count(tmp_path, monkeypatch):
    af, _ = _stack(tmp_path, monkeypatch, dying="scheduler")
    monkeypatch.setattr(LocalAirflow, "MAX_RESTARTS", 1)
    try:
        af._started = True
        af._restarts["scheduler"] = [time.monotonic() - LocalAirflow.RESTART_WINDOW_S - 1]
        _wait_exit(af, "scheduler")
        af.check_services()  # the old restart is outside the window: restarted, no error
        assert len(af._restarts["scheduler"]) == 1
    finally:
        af.stop()
