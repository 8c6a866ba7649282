"""Atomic publish of stage outputs on S3, against a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.config.common import ConfigError, validate_config
from tasks.fs import S3CredentialsError, s3_filesystem
from tasks.net import free_port
from tasks.storage import (
    POINTER_NAME,
    atomic_dir,
    clean_stale_versions,
    download_stage_dir,
    open_output,
    read_manifest,
    resolve_stage_dir,
    stage_dir,
    stage_location,
    write_manifest,
)

SECRET = "moto-secret-never-logged"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_root(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; returns ``s3://bucket/eeflow``."""
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EEFLOW_S3_ENDPOINT", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "moto-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"eeflow-{uuid.uuid4().hex[:12]}"
    import boto3

    boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="moto-key", aws_secret_access_key=SECRET,
    ).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/eeflow"


def write_output(folder: Path, text: str, *, chunks: int = 3) -> None:
    """A small stage output: a manifest, a nested 'zarr' with a few chunk files."""
    (folder / "scene.zarr").mkdir()
    for i in range(chunks):
        (folder / "scene.zarr" / f"c{i}").write_text(f"{text}-{i}")
    write_manifest(folder, stage="ingest", inputs=[text], config_hash="h", counts={"scenes": 1})


def versions(final: str) -> list[str]:
    fs = s3_filesystem()
    return sorted(
        p.rsplit("/", 1)[-1] for p in fs.ls(final) if p.rsplit("/", 1)[-1].startswith(".v-")
    )


def pointer(final: str) -> dict:
    return json.loads(s3_filesystem().cat_file(f"{final}/{POINTER_NAME}"))


def test_config_accepts_s3_root_and_keeps_local_roots(eeflow_home: Path) -> None:
    cfg = validate_config({"use_case": "polar", "data_root": "s3://my-bucket/eeflow/"})
    assert cfg.data_root == "s3://my-bucket/eeflow"
    assert cfg.storage_root() == "s3://my-bucket/eeflow"
    with pytest.raises(ValueError, match="is on S3.*resolved_root"):
        cfg.resolved_root()
    local = validate_config({"use_case": "polar", "data_root": "out"})
    assert local.storage_root() == local.resolved_root() == (eeflow_home / "out").resolve()
    with pytest.raises(ConfigError, match="data_root.*Bad_Bucket.*not a valid S3 bucket"):
        validate_config({"use_case": "polar", "data_root": "s3://Bad_Bucket/x"})
    with pytest.raises(ConfigError, match="data_root.*only local paths and s3://"):
        validate_config({"use_case": "polar", "data_root": "gs://bucket/x"})


def test_stage_location_local_is_stage_dir_and_s3_is_url(tmp_path: Path) -> None:
    assert stage_location(tmp_path, "polar", "ingest", "2026-11-25") == stage_dir(
        tmp_path, "polar", "ingest", "2026-11-25"
    )
    assert (
        stage_location("s3://b-1/root/", "polar", "ingest", "2026-11-25")
        == "s3://b-1/root/polar/ingest/2026-11-25"
    )
    with pytest.raises(ValueError, match="is on S3; use tasks.storage.stage_location"):
        stage_dir("s3://b-1/root", "polar", "ingest", "2026-11-25")
    with pytest.raises(ValueError):
        stage_location("s3://b-1/root", "polar", "../x", "2026-11-25")


def test_missing_credentials_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(S3CredentialsError) as err:
        with atomic_dir("s3://bucket-x/eeflow/polar/ingest/2026-11-25"):
            pass
    message = str(err.value)
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY are not set" in message
    assert "EEFLOW_S3_ENDPOINT" in message
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    with pytest.raises(S3CredentialsError, match="AWS_SECRET_ACCESS_KEY is not set"):
        read_manifest("s3://bucket-x/eeflow/polar/ingest/2026-11-25")


def test_publish_and_read_back(s3_root: str, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    final = str(stage_location(s3_root, "polar", "ingest", "2026-11-25"))
    with pytest.raises(FileNotFoundError, match="no _CURRENT pointer.*re-run the stage"):
        read_manifest(final)
    with atomic_dir(final) as tmp:
        assert isinstance(tmp, Path) and tmp.is_dir()
        write_output(tmp, "first")
    assert not tmp.exists()  # the local temporary is gone
    assert read_manifest(final)["inputs"] == ["first"]
    (version,) = versions(final)
    current = pointer(final)
    assert current["version"] == version and current["files"] == 4
    assert current["manifest"] == f"{version}/manifest.json" and current["previous"] == []
    assert resolve_stage_dir(final) == f"{final}/{version}"
    with open_output(final, "scene.zarr/c2") as handle:
        assert handle.read() == b"first-2"
    local = download_stage_dir(final, tmp_path / "copy")
    assert (local / "scene.zarr" / "c0").read_text() == "first-0"
    assert json.loads((local / "manifest.json").read_text())["inputs"] == ["first"]
    assert SECRET not in caplog.text


def test_republish_replaces_and_deletes_old_version(
    s3_root: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EEFLOW_S3_ENDPOINT")  # the AWS variable works as well
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        write_output(tmp, "first", chunks=5)
    (first,) = versions(final)
    with atomic_dir(final) as tmp:
        write_output(tmp, "second", chunks=2)
    (second,) = versions(final)
    assert second != first
    assert read_manifest(final)["inputs"] == ["second"]
    fs = s3_filesystem()
    assert not fs.exists(f"{final}/{first}/manifest.json")
    assert len(fs.find(f"{final}/{second}")) == 3  # the chunks of the old version are gone too

    with atomic_dir(final, keep_versions=2) as tmp:
        write_output(tmp, "third")
    assert pointer(final)["previous"] == [second]
    assert len(versions(final)) == 2
    with atomic_dir(final, keep_versions=2) as tmp:
        write_output(tmp, "fourth")
    assert read_manifest(final)["inputs"] == ["fourth"]
    assert len(versions(final)) == 2  # the older kept one went


def test_failure_in_stage_body_leaves_old_output(s3_root: str) -> None:
    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        write_output(tmp, "good")
    before = s3_filesystem().cat_file(f"{final}/{POINTER_NAME}")
    with pytest.raises(RuntimeError, match="stage broke"):
        with atomic_dir(final) as tmp:
            write_output(tmp, "bad")
            raise RuntimeError("stage broke")
    assert not tmp.exists()
    assert s3_filesystem().cat_file(f"{final}/{POINTER_NAME}") == before
    assert read_manifest(final)["inputs"] == ["good"]
    assert len(versions(final)) == 1


def test_failure_mid_upload_keeps_old_output_and_pointer(s3_root: str, monkeypatch) -> None:
    import s3fs

    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        write_output(tmp, "good")
    (good,) = versions(final)
    before = s3_filesystem().cat_file(f"{final}/{POINTER_NAME}")

    real_put_file = s3fs.S3FileSystem._put_file
    uploaded: list[str] = []

    async def flaky_put_file(self, lpath, rpath, *args, **kwargs):
        if len(uploaded) >= 2:
            raise ConnectionError(f"connection reset while uploading {rpath}")
        uploaded.append(rpath)
        return await real_put_file(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_put_file", flaky_put_file)
    with pytest.raises(ConnectionError, match="connection reset"):
        with atomic_dir(final) as tmp:
            write_output(tmp, "bad", chunks=6)
    assert len(uploaded) == 2  # the upload really was half done
    monkeypatch.setattr(s3fs.S3FileSystem, "_put_file", real_put_file)
    assert s3_filesystem().cat_file(f"{final}/{POINTER_NAME}") == before
    assert read_manifest(final)["inputs"] == ["good"]
    with open_output(final, "scene.zarr/c1") as handle:
        assert handle.read() == b"good-1"
    assert versions(final) == [good]  # the partial version was removed


def test_concurrent_writers_last_pointer_wins(s3_root: str) -> None:
    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        write_output(tmp, "old")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    seen: list[str] = []
    stop = threading.Event()

    def writer(name: str) -> None:
        try:
            with atomic_dir(final) as tmp:
                write_output(tmp, name, chunks=8)
                barrier.wait(timeout=30)  # both upload at the same time
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    reader_errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read_manifest(final)["inputs"][0])
            except BaseException as err:  # reported by the assertion below
                reader_errors.append(err)
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("w1", "w2")]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    watcher.join(timeout=30)
    assert not errors
    winner = pointer(final)
    content = read_manifest(final)["inputs"][0]
    assert content in ("w1", "w2")
    assert versions(final) == [winner["version"]]  # the loser's version and the old one are gone
    files = s3_filesystem().find(f"{final}/{winner['version']}")
    assert len(files) == 9
    assert not reader_errors
    assert set(seen) <= {"old", "w1", "w2"} and seen  # always a complete manifest


def test_stale_versions_of_failed_runs_are_cleaned(s3_root: str, monkeypatch) -> None:
    from tasks import storage

    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        write_output(tmp, "good")
    fs = s3_filesystem()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_version = f".v-{storage._HOST}-{int(dead.stdout)}-deadbeef0000"
    foreign_version = ".v-otherhost-123-cafe00000000"
    mine_version = f".v-{storage._HOST}-{storage.os.getpid()}-0123456789ab"
    for version in (dead_version, foreign_version, mine_version):
        fs.pipe_file(f"{final}/{version}/scene.zarr/c0", b"partial")
    assert clean_stale_versions(final) == [dead_version]  # the others may still be uploading
    monkeypatch.setattr(storage, "STALE_TEMPORARY_AGE_S", -1.0)  # everything is old now
    assert clean_stale_versions(final) == [foreign_version, mine_version]
    assert read_manifest(final)["inputs"] == ["good"]  # the published version is never removed
    fs.pipe_file(f"{final}/{dead_version}/c0", b"partial")
    with atomic_dir(final) as tmp:  # a publish cleans as well
        write_output(tmp, "next")
    assert len(versions(final)) == 1 and read_manifest(final)["inputs"] == ["next"]


def test_empty_output_and_bad_pointer_are_refused(s3_root: str) -> None:
    final = f"{s3_root}/polar/ingest/2026-11-25"
    with pytest.raises(ValueError, match="nothing to publish.*wrote no file"):
        with atomic_dir(final):
            pass
    s3_filesystem().pipe_file(f"{final}/{POINTER_NAME}", b"not json")
    with pytest.raises(ValueError, match="_CURRENT is not an eeflow output pointer"):
        read_manifest(final)


def test_polar_ingest_then_harmonise_on_s3(s3_root: str, eeflow_home: Path, tmp_path: Path) -> None:
    """A real stage pair: ingest writes a generated scene to S3, harmonise reads it back."""
    import xarray as xr

    from tasks.config.polar import PolarConfig
    from tasks.polar.harmonise import run_harmonise
    from tasks.polar.ingest import ingest_day
    from tasks.polar.schema import BACKSCATTER_VAR
    from tasks.polar.stages import labels_stage

    cfg = PolarConfig.model_validate({
        "data_root": s3_root,
        "ingest": {"generator": {"lines": 64, "samples": 96, "scenes_per_day": 1}},
        "harmonise": {"chunk": 64},
        "dask": {"cluster": "synchronous"},
    })
    ingest = ingest_day(cfg, "2026-01-15")
    assert ingest["output_dir"] == f"{s3_root}/polar/ingest/2026-01-15"
    assert read_manifest(ingest["output_dir"])["counts"]["scenes"] == 1
    result = run_harmonise(cfg, "2026-01-15")
    harmonise_dir = f"{s3_root}/polar/harmonise/2026-01-15"
    assert result["output_dir"] == harmonise_dir
    manifest = read_manifest(harmonise_dir)
    assert manifest["counts"]["scenes"] == 1 and manifest["inputs"][0].startswith(
        f"{s3_root}/polar/ingest/2026-01-15/"
    )
    local = download_stage_dir(harmonise_dir, tmp_path / "harmonise")
    (zarr,) = sorted(local.glob("*.zarr"))
    with xr.open_zarr(zarr) as ds:
        assert ds[BACKSCATTER_VAR].size > 0
    assert not (eeflow_home / "work").exists()  # nothing went to a local data root
    # labels works on local files: on S3 it runs through a scratch root and publishes there
    labelled = labels_stage(cfg, "2026-01-15")
    assert str(labelled.outputs["output_dir"]).startswith(f"{s3_root}/polar/labels/2026-01-15/.v-")
    assert read_manifest(f"{s3_root}/polar/labels/2026-01-15")["stage"] == "labels"


# --- behaviour of the S3 helpers, value by value (issue 19: mutation testing) ------------------


def publish(final: str, text: str) -> str:
    with atomic_dir(final) as tmp:
        write_output(tmp, text)
    return str(pointer(final)["version"])


def test_stage_location_on_s3_names_the_bad_component() -> None:
    good = {"use_case": "polar", "stage": "predict", "run_key": "2026-11-25"}
    for kind in good:
        parts = {**good, kind: "../escape"}
        with pytest.raises(ValueError, match=rf"^{kind} name '\.\./escape' cannot be used"):
            stage_location("s3://b-1/root", **parts)


def test_resolve_stage_dir_local_version_url_and_missing(s3_root: str, tmp_path: Path) -> None:
    from tasks.storage import MANIFEST_NAME

    assert resolve_stage_dir(tmp_path) == tmp_path
    assert resolve_stage_dir(str(tmp_path)) == tmp_path
    final = f"{s3_root}/polar/ingest/2026-11-25"
    version = publish(final, "one")
    named = f"{final}/{version}"  # a URL that already names a version is returned as it is
    assert resolve_stage_dir(named) == named
    assert read_manifest(named)["inputs"] == ["one"]
    s3_filesystem().rm(f"{named}/{MANIFEST_NAME}")
    missing = f"{s3_root}/polar/ingest/2026-11-26"
    with pytest.raises(FileNotFoundError) as err:
        resolve_stage_dir(missing)
    assert str(err.value) == (
        f"{missing} has no _CURRENT pointer: no complete eeflow stage output was published "
        "there; re-run the stage that produces it"
    )
    with pytest.raises(FileNotFoundError, match="no _CURRENT pointer"):
        resolve_stage_dir(named)  # no pointer and no manifest of its own any more


def test_bad_pointers_are_refused_with_the_reason(s3_root: str) -> None:
    final = f"{s3_root}/polar/ingest/2026-11-25"
    url = f"{final}/{POINTER_NAME}"
    fs = s3_filesystem()
    expected_tail = (
        "it should be JSON with format 'eeflow-pointer/1' naming a .v-* version; re-run the "
        "stage that writes this output"
    )
    cases = {
        "format 'eeflow-pointer/0'": {"format": "eeflow-pointer/0", "version": ".v-h-1-ab"},
        "format 'eeflow-pointer/1'": {"format": "eeflow-pointer/1", "version": "../../etc"},
        "format None": {"version": ".v-h-1-ab"},
    }
    for reason, content in cases.items():
        fs.pipe_file(url, json.dumps(content).encode())
        with pytest.raises(ValueError) as err:
            resolve_stage_dir(final)
        assert str(err.value) == (
            f"{url} is not an eeflow output pointer ({reason}); {expected_tail}"
        )
    fs.pipe_file(url, b'{"format": "eeflow-pointer/1"}')
    with pytest.raises(ValueError, match=r"pointer \('version'\); it should be JSON"):
        resolve_stage_dir(final)


def test_read_manifest_of_a_version_without_manifest_names_the_url(s3_root: str) -> None:
    final = f"{s3_root}/polar/ingest/2026-11-25"
    with atomic_dir(final) as tmp:
        (tmp / "data.bin").write_bytes(b"x")  # no manifest.json
    current = pointer(final)
    assert current["manifest"] is None and current["files"] == 1
    with pytest.raises(FileNotFoundError) as err:
        read_manifest(final)
    assert str(err.value) == (
        f"{final} has no manifest.json ({final}/{current['version']}/manifest.json is missing): "
        "it is not a complete eeflow stage output; re-run the stage that produces it"
    )


def test_read_manifest_follows_a_pointer_that_moved_meanwhile(s3_root: str, monkeypatch) -> None:
    from tasks import storage

    final = f"{s3_root}/polar/ingest/2026-11-25"
    live = publish(final, "live")
    answers = [f"{final}/.v-gone-1-000000000000", f"{final}/{live}", f"{final}/{live}"]
    real = storage.resolve_stage_dir

    def moving(folder):  # the first answer is a version deleted after a newer pointer landed
        assert folder == final
        return answers.pop(0) if answers else real(folder)

    monkeypatch.setattr(storage, "resolve_stage_dir", moving)
    assert read_manifest(final)["inputs"] == ["live"]

    calls: list[str] = []

    def always_moving(folder):  # a pointer that moves on every look: three attempts, then fail
        calls.append(folder)
        return f"{final}/.v-gone-1-{len(calls):012d}"

    monkeypatch.setattr(storage, "resolve_stage_dir", always_moving)
    with pytest.raises(FileNotFoundError, match=r"\.v-gone-1-000000000005/manifest\.json is miss"):
        read_manifest(final)
    assert calls == [final] * 6


def test_publish_over_a_pointer_without_history(s3_root: str) -> None:
    """A pointer with no ``previous`` list (written by hand or an older eeflow) is accepted."""
    final = f"{s3_root}/polar/ingest/2026-11-25"
    first = publish(final, "first")
    fs = s3_filesystem()
    fs.pipe_file(f"{final}/{POINTER_NAME}",
                 json.dumps({"format": "eeflow-pointer/1", "version": first}).encode())
    assert clean_stale_versions(final) == []
    with atomic_dir(final, keep_versions=2) as tmp:
        write_output(tmp, "second")
    assert pointer(final)["previous"] == [first]
    assert read_manifest(final)["inputs"] == ["second"] and len(versions(final)) == 2


def test_open_output_reads_only(s3_root: str, tmp_path: Path) -> None:
    for mode in ("w", "wb", "a", "ab", "r+", "rb+", "x+"):
        with pytest.raises(ValueError) as err:
            open_output(tmp_path, "data.txt", mode)
        assert str(err.value) == (
            f"open_output('data.txt', mode={mode!r}) only reads; write outputs inside atomic_dir"
        )
    assert list(tmp_path.iterdir()) == []  # nothing was created
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.txt").write_text("local\n")
    with open_output(tmp_path, "sub/data.txt") as handle:
        assert handle.read() == b"local\n"  # binary by default
    with open_output(str(tmp_path), "sub/data.txt", "r") as handle:
        assert handle.read() == "local\n"
    final = f"{s3_root}/polar/ingest/2026-11-25"
    publish(final, "remote")
    with open_output(final, "scene.zarr/c1", "r") as handle:
        assert handle.read() == "remote-1"
    with open_output(final, "scene.zarr/c0") as handle:
        assert handle.read() == b"remote-0"


def test_download_stage_dir_creates_parents_and_refuses_a_full_folder(
    s3_root: str, tmp_path: Path
) -> None:
    assert download_stage_dir(tmp_path, tmp_path / "unused") == tmp_path  # local: itself
    assert not (tmp_path / "unused").exists()
    final = f"{s3_root}/polar/ingest/2026-11-25"
    version = publish(final, "one")
    dest = tmp_path / "a" / "b" / "copy"
    assert download_stage_dir(final, dest) == dest
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "manifest.json", "scene.zarr/c0", "scene.zarr/c1", "scene.zarr/c2"
    ]
    assert (dest / "scene.zarr" / "c1").read_text() == "one-1"
    with pytest.raises(FileExistsError) as err:
        download_stage_dir(final, dest)
    assert str(err.value) == (
        f"{dest} is not empty; give an empty folder to download {final}/{version} into"
    )


def test_clean_stale_versions_spares_live_writers_and_logs_what_it_removed(
    s3_root: str, monkeypatch, caplog
) -> None:
    from tasks import storage

    final = f"{s3_root}/polar/ingest/2026-11-25"
    assert clean_stale_versions(final) == []  # nothing there yet
    fs = s3_filesystem()
    foreign = ".v-otherhost-123-cafe00000000"
    fs.pipe_file(f"{final}/{foreign}/c0", b"partial")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = f".v-{storage._HOST}-{child.pid}-0123456789ab"
        fs.pipe_file(f"{final}/{running}/c0", b"uploading")
        time.sleep(2.5)
        live = publish(final, "good")  # its files are new, the two versions above 2.5 s old
        assert clean_stale_versions(final) == []
        assert child.poll() is None  # asked with signal 0 only: the writer still runs
        monkeypatch.setattr(storage, "STALE_TEMPORARY_AGE_S", 1.5)
        caplog.set_level(logging.WARNING, logger="tasks.storage")
        assert clean_stale_versions(final) == sorted([foreign, running])
        assert caplog.records[-1].getMessage() == (
            f"removed 2 abandoned version(s) of {final}: {sorted([foreign, running])}"
        )
        assert versions(final) == [live] and child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_a_writer_of_another_user_is_not_gone(monkeypatch) -> None:
    from tasks import storage

    def refused(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(storage.os, "kill", refused)
    assert storage._writer_gone(f".v-{storage._HOST}-1-0123456789ab") is False


def test_removing_what_is_already_gone_is_quiet(s3_root: str, tmp_path: Path) -> None:
    from tasks import storage

    storage._remove(tmp_path / "gone")  # a folder another cleaner removed first
    storage._remove_version(s3_filesystem(), f"{s3_root}/polar/x/1", ".v-h-1-000000000000")
