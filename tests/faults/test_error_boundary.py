"""The one error boundary (CLI ``main`` and the stage operator), error families and exit codes,
exceptions crossing Dask process boundaries, and a clean run printing no traceback."""

from __future__ import annotations

import errno
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tasks.errors import EeflowError, ErrorFamily, ForeignError, describe_failure, family_of
from tasks.linked_data.store import StoreUnavailableError
from tasks.sentinel1.safe import SafeFormatError, open_safe
from tests.faults.conftest import run_cli, snapshot

DAY = "2026-01-15"


def tiny_polar_yaml(folder: Path, **dask: object) -> Path:
    """A polar config generating one 200 x 240 scene a day under ``folder/data``."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "use_case": "polar",
        "data_root": str(folder / "data"),
        "dask": {"cluster": "synchronous", "n_workers": 1, "memory_limit": "1GiB", **dask},
        "ingest": {"source": "generator",
                   "generator": {"lines": 200, "samples": 240, "scenes_per_day": 1}},
        "harmonise": {"chunk": 128},
        "patches": {"sizes": [20], "max_per_class": 50},
        "train": {"patch_size": 20},
    }))
    return path


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str]:
    """Run ``eeflow ARGS`` through ``tasks.cli.main`` in this process: (exit code, stderr)."""
    from tasks.cli import main

    monkeypatch.setattr(sys, "argv", ["eeflow", *args])
    monkeypatch.delenv("EEFLOW_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0), capsys.readouterr().err


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ({"use_case": "polar", "ingest": {"sourse": "generator"}}, "key 'ingest.sourse': unknown"),
        ({"use_case": "polar", "dask": {"n_workers": "many"}}, "key 'dask.n_workers'"),
        ("use_case: polar\ndask: [unclosed", "not valid YAML"),
        ({"use_case": "polar", "dask": {"memory_limit": "4 gigs"}}, "key 'dask.memory_limit'"),
        ({"use_case": "polar", "dask": {"memory_limit": "10MB"}}, "at least 256MiB"),
        ({"use_case": "linked_data", "store": {"replace": "drop_all"}}, "key 'store.replace'"),
    ],
    ids=["missing-file", "unknown-key", "wrong-type", "bad-yaml", "memory-unit",
         "memory-too-small", "bad-replace"],
)
def test_bad_config_exits_2_naming_the_key(monkeypatch, capsys, tmp_path, content, expected):
    config = tmp_path / "bad.yaml"
    if isinstance(content, dict):
        config.write_text(yaml.safe_dump(content))
    elif isinstance(content, str):
        config.write_text(content)
    code, err = run_main(monkeypatch, capsys, "polar", "ingest", "-c", str(config), "-d", DAY)
    assert code == ErrorFamily.CONFIG.exit_code == 2
    assert expected in err and "eeflow polar ingest" in err and str(config) in err
    assert "config error" in err and "Traceback" not in err
    assert not (tmp_path / "work").exists()


def test_deprecated_replace_value_is_accepted_with_a_warning(caplog):
    from tasks.config.linked_data import StoreConfig

    with caplog.at_level("WARNING"):
        cfg = StoreConfig(replace="drop_then_load")
    assert cfg.replace == "atomic_diff"
    assert "drop_then_load is deprecated" in caplog.text


# --------------------------------------------------------------------------- families and exits


def test_missing_upstream_output_exits_1_naming_the_stage_to_run(monkeypatch, capsys, tmp_path):
    config = tiny_polar_yaml(tmp_path)
    code, err = run_main(monkeypatch, capsys, "polar", "harmonise", "-c", str(config), "-d", DAY)
    assert code == 1
    assert "eeflow polar harmonise" in err and "no ingest output for 2026-01-15" in err
    assert "run the ingest stage first" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("fault", "code", "text"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/polar"), 4, "No space left"),
        (OSError(errno.EROFS, "Read-only file system", "/data/polar"), 4, "Read-only"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/polar/x"), 4,
         "Permission denied: '/data/polar/x'"),
        (StoreUnavailableError("http://127.0.0.1:9/query did not answer after 4 tries"), 3,
         "did not answer"),
        (TypeError("unsupported operand type(s) for +: 'int' and 'str'"), 70, "internal error"),
    ],
    ids=["enospc", "erofs", "permission", "store-unavailable", "internal-bug"],
)
def test_each_error_family_has_its_exit_code(monkeypatch, capsys, tmp_path, fault, code, text):
    import tasks.polar.ingest

    def broken(cfg, run_date):
        raise fault

    monkeypatch.setattr(tasks.polar.ingest, "ingest_day", broken)
    config = tiny_polar_yaml(tmp_path)
    got, err = run_main(monkeypatch, capsys, "polar", "ingest", "-c", str(config), "-d", DAY)
    assert got == code
    assert text in err and "eeflow polar ingest" in err and "Traceback" not in err


def test_debug_variable_shows_the_traceback(monkeypatch, capsys, tmp_path):
    config = tiny_polar_yaml(tmp_path)
    from tasks.cli import main

    monkeypatch.setattr(sys, "argv", ["eeflow", "polar", "harmonise", "-c", str(config), "-d", DAY])
    monkeypatch.setenv("EEFLOW_DEBUG", "1")
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert "Traceback (most recent call last)" in err and "no ingest output" in err


def test_locked_embedded_store_is_an_io_error(monkeypatch, capsys, ld_cfg, products, tmp_path):
    from tasks.linked_data.export import export_product
    from tasks.linked_data.store import EmbeddedStore
    from tests.tasks.linked_data.linked_data_samples import YEAR

    export_product(ld_cfg, "crop_field_instances", YEAR)
    store_dir = ld_cfg.resolved_root() / ld_cfg.store.path
    holder = EmbeddedStore(store_dir)  # like `eeflow rdf serve`: holds the RocksDB lock
    config = tmp_path / "ld.yaml"
    config.write_text(yaml.safe_dump(ld_cfg.model_dump(mode="json")))
    try:
        code, err = run_main(monkeypatch, capsys, "rdf", "load", "--config", str(config),
                             "--product", "crop_field_instances", "--run-key", YEAR)
    finally:
        del holder
    assert code == 4, err
    assert "cannot open the embedded triple store" in err and "eeflow rdf serve" in err
    assert "Traceback" not in err


def test_unreachable_http_store_exits_3(monkeypatch, capsys, ld_cfg, tmp_path):
    data = ld_cfg.model_dump(mode="json")
    data["store"].update(mode="http", url="http://127.0.0.1:9", retries=0, backoff_s=0.01,
                         timeout_s=2)
    config = tmp_path / "ld.yaml"
    config.write_text(yaml.safe_dump(data))
    code, err = run_main(monkeypatch, capsys, "rdf", "query", "ice_of_type_in_area",
                         "--config", str(config), "--param", "ice_type=ice", "--param",
                         f"day={DAY}", "--param",
                         "area=POLYGON((-180 60, 180 60, 180 90, -180 90, -180 60))")
    assert code == 3, err
    assert "127.0.0.1:9" in err and "store or service unavailable" in err
    assert "Traceback" not in err


def test_sparql_and_python_syntax_errors_are_told_apart():
    import pyoxigraph as ox

    with pytest.raises(SyntaxError) as sparql:
        ox.Store().query("SELEC * WHERE {")
    assert family_of(sparql.value) is ErrorFamily.INPUT
    with pytest.raises(SyntaxError) as python:
        compile("def (:", "tasks/broken.py", "exec")
    assert family_of(python.value) is ErrorFamily.INTERNAL
    failure = describe_failure(sparql.value, "eeflow rdf query", "--query x")
    assert failure.exit_code == 1 and "SyntaxError" in failure.message


# --------------------------------------------------------------------------- pickling


def _rasterio_chained_error() -> SafeFormatError:
    import rasterio

    try:
        try:
            rasterio.open("/nonexistent/measurement.tiff")
        except rasterio.errors.RasterioIOError as err:
            raise SafeFormatError(f"/x.SAFE/measurement.tiff: cannot read: {err}") from err
    except SafeFormatError as err:
        return err
    raise AssertionError("unreachable")


def test_eeflow_errors_pickle_with_an_unpicklable_cause():
    import tblib.pickling_support

    err = _rasterio_chained_error()
    plain = pickle.loads(pickle.dumps(err))
    assert type(plain) is SafeFormatError and str(plain) == str(err)
    tblib.pickling_support.install(err, err.__cause__)  # what distributed does for an error
    remote = pickle.loads(pickle.dumps(err))
    assert type(remote) is SafeFormatError and str(remote) == str(err)
    assert isinstance(remote.__cause__, ForeignError)
    assert "rasterio.errors.RasterioIOError" in str(remote.__cause__)


def test_every_eeflow_error_class_round_trips():
    import importlib
    import pkgutil

    import tasks

    for module in pkgutil.walk_packages(tasks.__path__, "tasks."):
        if module.name.startswith(("tasks.interlinking", "tasks.serving")):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:
            continue
    classes, pending = [], [EeflowError]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    assert len(classes) > 30
    unpicklable = _rasterio_chained_error().__cause__
    for cls in classes:
        err = cls("file x: what is wrong")
        err.__cause__ = unpicklable
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == str(err), cls


def _read_measurement(safe: str) -> object:
    return open_safe(safe).read_dn("HH")


def test_worker_error_keeps_its_type_across_processes(small_scene, tmp_path):
    from tasks.config.common import DaskConfig
    from tasks.dask_cluster import dask_client

    safe = tmp_path / small_scene.safe_path.name
    shutil.copytree(small_scene.safe_path, safe)
    tiff = next((safe / "measurement").glob("*-hh-*.tiff"))
    tiff.write_bytes(tiff.read_bytes()[:2000])
    cfg = DaskConfig(cluster="local", workers="processes", n_workers=1, memory_limit="1GiB")
    with dask_client(cfg) as client:
        future = client.submit(_read_measurement, str(safe))
        with pytest.raises(SafeFormatError, match=tiff.name) as caught:
            future.result()
    assert type(caught.value) is SafeFormatError


# --------------------------------------------------------------------------- operator


def _operator(target: str, config: str):
    from operators.stage import EeflowStageOperator

    return EeflowStageOperator(task_id="harmonise", target=target, default_config=config)


def test_operator_fails_a_config_error_at_once_without_chain(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    op = _operator("tasks.polar.stages:harmonise_stage", str(tmp_path / "missing.yaml"))
    with pytest.raises(AirflowFailException) as caught:
        op.execute({"params": {"run_date": DAY}})
    message = str(caught.value)
    assert "harmonise (tasks.polar.stages:harmonise_stage)" in message
    assert "missing.yaml" in message and "config error" in message and DAY in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_operator_retries_an_unavailable_store(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    import tasks.polar.stages

    def down(cfg, run_date):
        raise StoreUnavailableError("http://oxigraph:7878/store did not answer after 4 tries")

    monkeypatch.setattr(tasks.polar.stages, "ingest_stage", down)
    op = _operator("tasks.polar.stages:ingest_stage", str(tiny_polar_yaml(tmp_path)))
    with pytest.raises(AirflowException) as caught:
        op.execute({"params": {"run_date": DAY}})
    assert not isinstance(caught.value, AirflowFailException)
    assert "store or service unavailable" in str(caught.value)


# --------------------------------------------------------------------------- clean runs


@pytest.fixture(scope="module")
def harmonised_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with tiny.yaml and the ingest / harmonise / labels outputs of DAY."""
    from tasks.config.common import load_config
    from tasks.polar.stages import harmonise_stage, ingest_stage, labels_stage

    folder = tmp_path_factory.mktemp("polar_day")
    cfg = load_config(tiny_polar_yaml(folder))
    for stage in (ingest_stage, harmonise_stage, labels_stage):
        stage(cfg, DAY)
    return folder


@pytest.mark.parametrize("workers", ["subprocess", "processes"])
def test_clean_cli_run_on_a_local_cluster_prints_no_traceback(harmonised_day, workers):
    done = run_cli("polar", "patches", "-c", str(harmonised_day / "tiny.yaml"), "-d", DAY,
                   "--set", "dask.cluster=local", "--set", f"dask.workers={workers}",
                   "--set", "dask.n_workers=2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "CommClosedError" not in done.stderr
    assert '"n_patches"' in done.stdout


def test_kill_9_during_harmonise_keeps_the_previous_output(harmonised_day):
    import signal
    import subprocess
    import time

    from tests.faults.conftest import REPO

    out = harmonised_day / "data" / "polar" / "harmonise"
    before = snapshot(out / DAY)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    child = subprocess.Popen(
        [sys.executable, "-c", "from tasks.cli import main; main()", "polar", "harmonise",
         "-c", str(harmonised_day / "tiny.yaml"), "-d", DAY],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob(f".{DAY}.tmp-*")):
        time.sleep(0.02)
    assert child.poll() is None, "harmonise finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert snapshot(out / DAY) == before
