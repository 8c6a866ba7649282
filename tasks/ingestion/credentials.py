"""Access tokens for catalogue downloads: from the environment or an Airflow connection.

The token is looked up when a download starts, never stored in a config, a manifest or a log
line; :func:`redact` removes it from any text that could reach one.
"""

from __future__ import annotations

import logging
import os

from tasks.config.ingestion import CatalogueConfig
from tasks.errors import EeflowError, ErrorFamily

log = logging.getLogger(__name__)


class MissingCredentialsError(EeflowError, RuntimeError):
    """A download needs a token and none is configured (the message says where to put it)."""

    family = ErrorFamily.CONFIG


def _from_airflow(conn_id: str) -> str | None:
    try:
        from airflow.sdk import BaseHook  # Airflow 3
    except ImportError:
        try:
            # Airflow 2 location; Airflow 3 (the installed one) no longer exports it there
            from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]
        except ImportError:
            return None
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as err:  # Airflow raises its own not-found types
        log.info("Airflow connection %r not available: %s", conn_id, type(err).__name__)
        return None
    return connection.password or None


def access_token(catalogue: CatalogueConfig, *, required: bool | None = None) -> str | None:
    """Return the bearer token for ``catalogue`` downloads, or None when none is needed.

    Looks at the environment variable ``catalogue.credentials.token_env``, then the Airflow
    connection ``catalogue.credentials.airflow_conn_id`` (its password).

    Raises:
        MissingCredentialsError: the provider needs a token and neither place holds one.

    """
    creds = catalogue.credentials
    token = os.environ.get(creds.token_env, "").strip() or None
    if token is None and creds.airflow_conn_id:
        token = _from_airflow(creds.airflow_conn_id)
    needed = catalogue.token_required if required is None else required
    if token is None and needed:
        where = f"the environment variable {creds.token_env}"
        if creds.airflow_conn_id:
            where += f" or the password of the Airflow connection {creds.airflow_conn_id!r}"
        raise MissingCredentialsError(
            f"downloading from {catalogue.provider} needs an access token and none is set: put "
            f"it in {where} (never in the config file). For the Copernicus Data Space see "
            "https://documentation.dataspace.copernicus.eu/APIs/Token.html"
        )
    return token


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
