"""HTTP download of one file: resume, retries with backoff, checksum, atomic placement.

The file is written to ``.{name}.part`` beside the destination. A dropped connection or a 429 /
5xx answer is retried after an exponential backoff (``Retry-After`` honoured, capped at
``max_backoff_s``), asking only for the missing bytes (``Range: bytes=N-``) when some are already
there. When the catalogue gives a checksum the complete file is verified; a mismatch removes it and
raises :class:`~tasks.ingestion.checksum.ChecksumError`. Only a complete, verified file is renamed
into place, so the destination is either absent or right.

The bearer token travels in the ``Authorization`` header only (kept on redirects inside the same
domain, dropped elsewhere); URLs and messages never contain it.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tasks.config.ingestion import DownloadConfig
from tasks.errors import EeflowError, ErrorFamily
from tasks.ingestion.checksum import ChecksumError, file_digest, pick_algorithm
from tasks.ingestion.credentials import redact

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5


class DownloadError(EeflowError, RuntimeError):
    """A file could not be fetched (the message names the URL, the answer and what to do)."""

    family = ErrorFamily.UNAVAILABLE


class DownloadAuthError(DownloadError):
    """The server refused the token (401 / 403)."""

    family = ErrorFamily.CONFIG


@dataclass
class DownloadResult:
    """What one download did (all of it safe to put in a manifest)."""

    path: Path
    url: str
    bytes: int
    seconds: float
    attempts: int
    resumed_from: list[int] = field(default_factory=list)
    checksum_algorithm: str | None = None
    checksum: str | None = None
    checksum_verified: bool = False

    def summary(self) -> dict[str, Any]:
        """JSON-ready record for the fetch manifest."""
        return {
            "file": self.path.name,
            "url": self.url,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "resumed_from": self.resumed_from,
            "checksum": (
                {"algorithm": self.checksum_algorithm, "value": self.checksum,
                 "verified": self.checksum_verified}
                if self.checksum_algorithm else "none given by the catalogue"
            ),
        }


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, settings: DownloadConfig, retry_after: float | None) -> float:
    """Delay before retry ``attempt`` (1-based): ``backoff_s * 2**(attempt-1)`` or Retry-After.

    Both are capped at ``max_backoff_s``; Retry-After wins over a shorter backoff.
    """
    delay = settings.backoff_s * 2 ** (attempt - 1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.max_backoff_s)


def _same_domain(a: str, b: str) -> bool:
    host_a = (urllib.parse.urlsplit(a).hostname or "").split(".")
    host_b = (urllib.parse.urlsplit(b).hostname or "").split(".")
    return host_a[-2:] == host_b[-2:]


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _open(
    session: requests.Session, url: str, headers: dict[str, str], timeout: float
) -> requests.Response:
    """GET following redirects by hand so the token only goes to the same domain."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        response = session.get(
            current, headers=headers, stream=True, timeout=timeout, allow_redirects=False
        )
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        target = urllib.parse.urljoin(current, response.headers.get("Location", ""))
        response.close()
        if "Authorization" in headers and not _same_domain(url, target):
            headers = {k: v for k, v in headers.items() if k != "Authorization"}
        current = target
    raise DownloadError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _check_status(response: requests.Response, url: str, part: Path, have: int,
                  expected_size: int) -> bool:
    """Raise for a refused, transient or permanent answer; True when the file is complete."""
    status = response.status_code
    if status in RETRY_STATUS:
        raise _Retry(f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))
    if status in (401, 403):
        raise DownloadAuthError(
            f"{url}: HTTP {status}: the server refused the access token (expired or without "
            "rights); fetch a new token and set it again"
        )
    if status == 416 and have:
        if expected_size in (0, have):
            return True  # already complete
        part.unlink()
        raise _Retry("HTTP 416 on resume: restarting from byte 0")
    if status not in (200, 206):
        raise DownloadError(
            f"{url}: HTTP {status} {response.reason}; check the product id and the "
            "catalogue's download URL (ingest.catalogue.download_url)"
        )
    return False


def _write_mode(response: requests.Response, url: str, part: Path, have: int,
                resumed_from: list[int]) -> str:
    """``ab`` to append a resumed range, ``wb`` when the server sent the whole file again."""
    mode = "ab"
    if response.status_code == 200 and have:
        log.info("%s: server ignored the Range request; restarting from byte 0", url)
        mode = "wb"
    elif response.status_code == 206:
        start = response.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
        if start != str(have):
            part.unlink(missing_ok=True)
            raise _Retry(f"Content-Range {response.headers.get('Content-Range')!r} != {have}")
        resumed_from.append(have)
    return mode


def _stream_body(response: requests.Response, part: Path, mode: str, chunk_bytes: int) -> None:
    """Write the response body to ``part``; a dropped or short transfer raises _Retry."""
    length = int(response.headers.get("Content-Length") or 0)
    written = 0
    try:
        with part.open(mode) as fh:
            for chunk in response.iter_content(chunk_bytes):
                fh.write(chunk)
                written += len(chunk)
    except (requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as err:
        reason = f"connection dropped after {written} bytes: {type(err).__name__}"
        raise _Retry(reason) from None
    if length and written < length:
        raise _Retry(f"connection closed after {written} of {length} bytes")


def _attempt(
    session: requests.Session,
    url: str,
    part: Path,
    token: str | None,
    expected_size: int,
    settings: DownloadConfig,
    resumed_from: list[int],
) -> None:
    """One request: append the missing bytes to ``part``; raise _Retry for transient failures."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = _open(session, url, headers, settings.timeout_s)
    except (requests.ConnectionError, requests.Timeout) as err:
        raise _Retry(f"connection failed: {type(err).__name__}") from None
    with response:
        if _check_status(response, url, part, have, expected_size):
            return
        mode = _write_mode(response, url, part, have, resumed_from)
        _stream_body(response, part, mode, settings.chunk_bytes)


def _fetch_with_retries(
    session: requests.Session,
    url: str,
    part: Path,
    token: str | None,
    expected_size: int,
    settings: DownloadConfig,
    sleep: Callable[[float], None],
    safe_url: str,
) -> tuple[int, list[int]]:
    """Run attempts with backoff until ``part`` is complete: (attempts, resume offsets)."""
    attempts = 0
    resumed_from: list[int] = []
    while True:
        attempts += 1
        try:
            _attempt(session, url, part, token, expected_size, settings, resumed_from)
            return attempts, resumed_from
        except _Retry as retry:
            if attempts > settings.retries:
                raise DownloadError(
                    f"{safe_url}: gave up after {attempts} attempts; last: {retry}. The "
                    f"partial file {part} is kept and the next run resumes it; check the "
                    "service status or raise ingest.catalogue.download.retries"
                ) from None
            delay = backoff_delay(attempts, settings, retry.retry_after)
            log.warning("%s: %s; retry %d/%d in %.1f s", safe_url, retry, attempts,
                        settings.retries, delay)
            sleep(delay)


def _verify(part: Path, dest: Path, expected_size: int, algorithm: str | None,
            checksums: dict[str, str], settings: DownloadConfig, result: DownloadResult) -> None:
    """Check size and checksum of ``part`` (removed on mismatch); record the checksum."""
    size = result.bytes
    if expected_size and size != expected_size:
        part.unlink()
        raise ChecksumError(
            f"{dest.name}: got {size} bytes, the catalogue announces {expected_size}; the file "
            "was removed, re-run to fetch it again"
        )
    if algorithm is not None:
        digest = file_digest(part, algorithm, settings.chunk_bytes)
        if digest != checksums[algorithm]:
            part.unlink()
            raise ChecksumError(
                f"{dest.name}: {algorithm} checksum {digest} does not match the catalogue's "
                f"{checksums[algorithm]}; the file was removed (corrupted transfer or changed "
                "product), re-run to fetch it again"
            )
        result.checksum_algorithm, result.checksum, result.checksum_verified = (
            algorithm, digest, True)


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    settings: DownloadConfig | None = None,
    token: str | None = None,
    expected_size: int = 0,
    checksums: dict[str, str] | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Fetch ``url`` into ``dest`` (resume, retries, checksum, atomic rename).

    Args:
        url: http(s) URL of the file (no credentials in it).
        dest: final path; written as ``.{name}.part`` until complete and verified.
        settings: retries, backoff, timeout, chunk size, ``require_checksum``.
        token: bearer token (Authorization header only).
        expected_size: bytes the catalogue announces (0 = unknown).
        checksums: ``{algorithm: hex}`` from the catalogue (see :mod:`tasks.ingestion.checksum`).
        session: requests session to reuse.
        sleep: injectable for tests.

    Raises:
        DownloadError: retries exhausted or a permanent HTTP error.
        ChecksumError: the file does not match; it has been removed.

    """
    settings = settings or DownloadConfig()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.parent / f".{dest.name}.part"
    checksums = checksums or {}
    algorithm = pick_algorithm(checksums)
    if algorithm is None and settings.require_checksum:
        raise ChecksumError(
            f"{dest.name}: the catalogue gives no usable checksum ({sorted(checksums) or 'none'}) "
            "and ingest.catalogue.download.require_checksum is true"
        )
    own_session = session is None
    session = session or requests.Session()
    safe_url = redact(url, token)
    started = time.perf_counter()
    try:
        attempts, resumed_from = _fetch_with_retries(
            session, url, part, token, expected_size, settings, sleep, safe_url
        )
    finally:
        if own_session:
            session.close()
    size = part.stat().st_size
    result = DownloadResult(dest, safe_url, size, 0.0, attempts, resumed_from)
    _verify(part, dest, expected_size, algorithm, checksums, settings, result)
    os.replace(part, dest)
    result.seconds = time.perf_counter() - started
    log.info("fetched %s (%d bytes, %d attempt(s), checksum %s)", dest.name, size, attempts,
             algorithm or "none given")
    return result
