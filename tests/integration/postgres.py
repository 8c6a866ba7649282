"""A throw-away PostgreSQL cluster on 127.0.0.1 for the production-stack tests.

:func:`ensure_postgres` installs Debian's server when it is missing
(``containers/ensure-postgres.sh``); :class:`TempPostgres` runs ``initdb`` + ``pg_ctl`` in a
temporary folder on a free port, as the ``postgres`` user when this process is root (the server
refuses to run as root), with a random password for TCP logins, and removes the folder when
stopped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tasks.net import free_port

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "containers" / "ensure-postgres.sh"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed and could not be installed here; the message says why."""


def postgres_bin_dir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def ensure_postgres() -> Path:
    """Return the server's bin folder, installing Debian's ``postgresql`` first if it is missing.

    Raises:
        PostgresUnavailable: not installed and the installer failed (not root, no apt-get, no
            network); the message carries the installer's output.
    """
    found = postgres_bin_dir()
    if found is not None:
        return found
    proc = subprocess.run(["sh", str(INSTALLER)], capture_output=True, text=True, check=False,
                          timeout=600)
    found = postgres_bin_dir()
    if proc.returncode != 0 or found is None:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise PostgresUnavailable(
            f"PostgreSQL is not installed and {INSTALLER.relative_to(REPO)} could not install it "
            f"(exit {proc.returncode}):\n{tail}\nInstall it (Debian: apt-get install -y "
            "postgresql) and rerun")
    return found


@dataclass
class TempPostgres:
    """One PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:``port`` only."""

    bin_dir: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="eeflow-pg-"))

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.folder / "server.log"

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of ``database`` as the superuser ``postgres`` over TCP."""
        return f"{driver}://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120,
                              cwd=self.folder)
        if proc.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}\nserver log:\n{log[-3000:]}")

    def start(self) -> TempPostgres:
        """``initdb`` (password logins over TCP, trust on the socket) and ``pg_ctl start``."""
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(pwfile, "postgres")
        pwfile.chmod(0o600)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--no-locale",
                  "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={pwfile}")
        pwfile.unlink()
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                  "-t", "60", "-o", options, "start")
        return self

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name`` over TCP with the password."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                password=self.password, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        """Run one query over TCP and return its rows."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                password=self.password, dbname=database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast",
                          "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
