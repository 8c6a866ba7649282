"""Where stage outputs live: a local folder, or an S3 bucket (MinIO, CREODIAS) through s3fs.

A data root is either a local path (handled by :mod:`pathlib`, exactly as before) or an
``s3://bucket/prefix`` URL. The S3 endpoint and credentials come only from the environment, never
from the config, and are never logged:

- ``EEFLOW_S3_ENDPOINT`` (or ``AWS_ENDPOINT_URL``): the endpoint URL, e.g.
  ``https://s3.waw3-1.cloudferro.com`` or ``http://minio:9000``; unset = AWS itself.
- ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (required), ``AWS_SESSION_TOKEN`` (optional).
- ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (optional).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s3fs import S3FileSystem

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
ENDPOINT_VARIABLES = ("EEFLOW_S3_ENDPOINT", "AWS_ENDPOINT_URL")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3CredentialsError(RuntimeError):
    """The environment lacks what an ``s3://`` data root needs."""


def is_remote(location: object) -> bool:
    """Tell whether ``location`` is an ``s3://`` URL (a string); paths are always local."""
    return isinstance(location, str) and location.lower().startswith(S3_SCHEME)


def normalise_s3_url(url: str) -> str:
    """Return ``s3://bucket/prefix`` without a trailing slash; raise ValueError when malformed.

    The error names the URL, what is wrong and what a valid one looks like.
    """
    if not is_remote(url):
        raise ValueError(f"{url!r} is not an s3:// URL (expected s3://bucket/prefix)")
    rest = url[len(S3_SCHEME):].strip("/")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{url!r}: bucket name {bucket!r} is not a valid S3 bucket name (3-63 characters: "
            "lowercase letters, digits, '.', '-'); expected s3://bucket/prefix"
        )
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts) or "//" in prefix:
        raise ValueError(
            f"{url!r}: the prefix may not contain '.', '..' or empty segments; "
            "expected s3://bucket/prefix"
        )
    return S3_SCHEME + "/".join([bucket, *parts])


def join(location: str, *parts: str) -> str:
    """Join ``parts`` onto an ``s3://`` URL with ``/``."""
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])


def s3_endpoint() -> str | None:
    """Return the S3 endpoint URL from the environment, or None (AWS's default endpoint)."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def s3_filesystem() -> S3FileSystem:
    """Return an s3fs file system configured from the environment (see the module docstring).

    Raises :class:`S3CredentialsError` naming every missing variable. Listings are not cached, so
    a pointer written by another process is seen at once.
    """
    missing = [name for name in CREDENTIAL_VARIABLES if not os.environ.get(name, "").strip()]
    if missing:
        raise S3CredentialsError(
            f"an s3:// data root needs S3 credentials in the environment, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (and EEFLOW_S3_ENDPOINT or AWS_ENDPOINT_URL for MinIO / "
            "CREODIAS), or use a local data_root"
        )
    try:
        import s3fs
    except ImportError as err:  # pragma: no cover - s3fs is a dependency
        raise S3CredentialsError(
            "an s3:// data root needs the s3fs package: pip install s3fs"
        ) from err
    client_kwargs: dict[str, Any] = {}
    endpoint = s3_endpoint()
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    log.debug("S3 file system at %s", endpoint or "the AWS default endpoint")
    return s3fs.S3FileSystem(
        key=os.environ["AWS_ACCESS_KEY_ID"].strip(),
        secret=os.environ["AWS_SECRET_ACCESS_KEY"].strip(),
        token=os.environ.get("AWS_SESSION_TOKEN") or None,
        client_kwargs=client_kwargs,
        use_listings_cache=False,
    )
