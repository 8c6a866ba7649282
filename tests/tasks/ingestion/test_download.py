"""Download faults against a local server: dropped connection, wrong checksum, 429, bad zip."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from tasks.config.ingestion import CatalogueConfig, DownloadConfig
from tasks.ingestion.archive import UnsafeArchiveError, safe_extract
from tasks.ingestion.checksum import ChecksumError, parse_multihash
from tasks.ingestion.credentials import MissingCredentialsError, access_token
from tasks.ingestion.download import DownloadError, backoff_delay, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SETTINGS = DownloadConfig(retries=3, backoff_s=0.01, max_backoff_s=5.0, chunk_bytes=4096)


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.routes["/f.bin"] = PAYLOAD
    server.faults["/f.bin"] = [("drop", 300_000)]
    sleeps = []
    result = download(f"{server.base}/f.bin", tmp_path / "f.bin", settings=SETTINGS,
                      checksums={"md5": hashlib.md5(PAYLOAD).hexdigest()},
                      expected_size=len(PAYLOAD), sleep=sleeps.append)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert result.attempts == 2 and len(result.resumed_from) == 1
    offset = result.resumed_from[0]  # the bytes written before the drop (whole chunks)
    assert 250_000 < offset <= 300_000
    assert result.checksum_verified and result.checksum_algorithm == "md5"
    ranges = [h.get("Range") for _, p, h in server.requests if p == "/f.bin"]
    assert ranges == [None, f"bytes={offset}-"]
    assert len(sleeps) == 1
    assert not list(tmp_path.glob(".*.part"))


def test_wrong_checksum_is_rejected_and_file_removed(server, tmp_path):
    server.routes["/f.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="sha256 checksum .* does not match.*removed"):
        download(f"{server.base}/f.bin", tmp_path / "f.bin", settings=SETTINGS,
                 checksums={"sha256": "0" * 64})
    assert list(tmp_path.iterdir()) == []


def test_429_backs_off_honouring_retry_after(server, tmp_path):
    server.routes["/f.bin"] = PAYLOAD
    server.faults["/f.bin"] = [("status", 429, 3), ("status", 503, None)]
    sleeps = []
    result = download(f"{server.base}/f.bin", tmp_path / "f.bin", settings=SETTINGS,
                      sleep=sleeps.append)
    assert result.attempts == 3
    assert sleeps == [3.0, 0.02]  # Retry-After, then exponential backoff (0.01 * 2)
    assert backoff_delay(10, SETTINGS, None) == 5.0  # capped


def test_retries_exhausted_names_url_and_keeps_partial(server, tmp_path):
    server.routes["/f.bin"] = PAYLOAD
    server.faults["/f.bin"] = [("status", 500, None)] * 5
    with pytest.raises(DownloadError, match=r"f.bin: gave up after 4 attempts; last: HTTP 500"):
        download(f"{server.base}/f.bin", tmp_path / "f.bin", settings=SETTINGS,
                 sleep=lambda s: None)


def test_zip_with_parent_entries_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("P.SAFE/manifest.safe", b"<xml/>")
        zf.writestr("P.SAFE/../../evil.txt", b"owned")
    with pytest.raises(UnsafeArchiveError, match=r"'P.SAFE/../../evil.txt' contains '\.\.'"):
        safe_extract(bad, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_zip_absolute_member_symlink_and_size_cap(tmp_path):
    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/etc/evil", b"x")
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        safe_extract(absolute, tmp_path / "o1", max_bytes=1 << 20)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("P.SAFE/escape")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../outside")
    with pytest.raises(UnsafeArchiveError, match="link to '../../outside'"):
        safe_extract(link, tmp_path / "o2", max_bytes=1 << 20)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("P.SAFE/zeros", b"\0" * 2_000_000)
    with pytest.raises(UnsafeArchiveError, match="unpacks to more than 1000000 bytes"):
        safe_extract(big, tmp_path / "o3", max_bytes=1_000_000)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


def test_missing_credentials_one_clear_message(monkeypatch):
    monkeypatch.delenv("CDSE_ACCESS_TOKEN", raising=False)
    with pytest.raises(MissingCredentialsError) as info:
        access_token(CatalogueConfig(provider="cop_dataspace"))
    message = str(info.value)
    assert "environment variable CDSE_ACCESS_TOKEN" in message and "never in the config" in message
    assert access_token(CatalogueConfig(provider="earth_search")) is None  # public: no token


def test_multihash_of_cdse_stac():
    algorithm, digest = parse_multihash("1620" + "ab" * 32)
    assert algorithm == "sha3_256" and digest == "ab" * 32
    assert parse_multihash("d50110" + "cd" * 16) == ("md5", "cd" * 16)
    assert parse_multihash("9999") is None
