"""A throwaway local PostgreSQL + PostGIS server for tests, benchmarks and ``make run-postgis``.

Debian's ``initdb``/``pg_ctl`` refuse to run as root, so as root every server command runs as
the ``postgres`` user (``runuser -u postgres``). The server lives in one folder (data, log,
socket, password) on a free port; the superuser connects through the socket in that folder
(readable by its owner only), the application role over TCP with a random password.

Command line::

    python -m geo_ibm.store.pg_local start --dir DIR [--port N] [--database geo_ibm]
    python -m geo_ibm.store.pg_local stop --dir DIR
    python -m geo_ibm.store.pg_local run [--events 20000] [--port 5000 --port 5001]

``start`` prints the store URL (``postgresql://geo_ibm:...@127.0.0.1:N/geo_ibm``). ``run`` (what
``make run-postgis`` calls) starts a server in a temporary folder, initialises the store, loads
the demo and serves the web app from one waitress process per ``--port``; Ctrl+C stops them and
removes the server with its data.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geo_ibm.errors import StoreError

APP_ROLE = "geo_ibm"
SUPERUSER = "postgres"
TEMPLATE = "geo_ibm_template"
"""A database with PostGIS installed, copied by :meth:`LocalServer.create_database`."""

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OS_USER = "postgres"


def bin_dir() -> Path:
    """The folder of ``initdb``/``pg_ctl``: ``GEO_IBM_PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``.

    Raises
    ------
    StoreError
        If no PostgreSQL server binaries are installed (Debian: ``postgresql``, ``postgresql-15-postgis-3``).
    """
    explicit = os.environ.get("GEO_IBM_PG_BIN")
    candidates = [Path(explicit)] if explicit else sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    where = explicit or "/usr/lib/postgresql/*/bin"
    raise StoreError(f"no PostgreSQL server binaries (initdb, pg_ctl) in {where}; install the Debian packages "
                     "postgresql and postgresql-15-postgis-3, or set GEO_IBM_PG_BIN")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    # The server refuses to run as root: hand it to the postgres account then.
    if os.geteuid() == 0:
        return ["runuser", "-u", _OS_USER, "--", *command]
    return command


def _run(command: list[str], *, what: str, timeout: float = 120) -> str:
    proc = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise StoreError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


@dataclass
class LocalServer:
    """A running local server (see :func:`start_server`); :meth:`stop` ends it, the ``with`` block too."""

    folder: Path
    port: int
    password: str
    binaries: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder

    @property
    def passfile(self) -> Path:
        """A libpq password file (``PGPASSFILE``) with the application role's password."""
        return self.folder / "pgpass"

    def url(self, database: str = APP_ROLE, *, password: bool = True) -> str:
        """Store URL of ``database`` for the application role over TCP; without ``password``
        libpq finds it in :attr:`passfile` (set ``PGPASSFILE``)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{APP_ROLE}{secret}@127.0.0.1:{self.port}/{database}"

    def admin_conninfo(self, database: str = "postgres") -> str:
        """libpq connection string of the superuser (through the server's socket)."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={database}"

    def sql(self, statement: str, *, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit); the rows it returns."""
        import psycopg

        with psycopg.connect(self.admin_conninfo(database), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str, *, template: str = TEMPLATE) -> str:
        """Create database ``name`` owned by the application role, PostGIS included; returns its URL."""
        if not _NAME.match(name):
            raise StoreError(f"database name must be lowercase letters, digits and _, got {name!r}")
        self.sql(f'CREATE DATABASE "{name}" OWNER {APP_ROLE} TEMPLATE {template} STRATEGY FILE_COPY')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        with contextlib.suppress(StoreError, subprocess.TimeoutExpired):
            _run([str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], what="pg_ctl stop",
                 timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    folder: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    database: str | None = APP_ROLE,
    fast: bool = False,
) -> LocalServer:
    """Start a new PostgreSQL server with PostGIS in ``folder`` (default: a new temporary folder).

    Parameters
    ----------
    folder
        An empty or absent folder for the server (data, log, socket); keep the path short, a
        Unix socket path has at most 107 bytes.
    port
        TCP port on 127.0.0.1 (default: a free one).
    database
        Create this database for the application role (``None``: only the template).
    fast
        Turn off fsync and synchronous commit: for tests and benchmarks, never for data you keep
        (a killed client still loses nothing committed; an OS crash may).

    Returns
    -------
    LocalServer
        With the application role ``geo_ibm`` (login, no superuser, no CREATEDB, no CREATEROLE)
        owning ``database`` and the template ``geo_ibm_template`` (PostGIS installed).

    Raises
    ------
    StoreError
        If the binaries are missing or the server does not start (the message has its log).
    """
    binaries = bin_dir()
    base = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="geo_ibm_pg_"))
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o700)
    if os.geteuid() == 0:
        shutil.chown(base, user=_OS_USER, group=None)
    server = LocalServer(folder=base, port=port or free_port(), password=secrets.token_urlsafe(18), binaries=binaries)
    try:
        _initdb(server)
        _configure(server, fast=fast)
        log = base / "server.log"
        try:
            _run([str(binaries / "pg_ctl"), "-D", str(server.data), "-l", str(log), "-w", "-t", "60", "start"],
                 what="pg_ctl start", timeout=90)
        except StoreError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StoreError(f"{exc}\nserver log ({log}):\n{tail}") from None
        server.sql(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{server.password}' "
                   "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION")
        server.passfile.write_text(f"127.0.0.1:{server.port}:*:{APP_ROLE}:{server.password}\n")
        os.chmod(server.passfile, 0o600)
        server.sql(f"CREATE DATABASE {TEMPLATE}")
        server.sql("CREATE EXTENSION postgis", database=TEMPLATE)
        if database:
            server.create_database(database)
    except BaseException:
        server.stop()
        raise
    return server


def _initdb(server: LocalServer) -> None:
    pwfile = server.folder / ".superuser"
    # Only the socket (a folder of the server's owner) lets the superuser in; it gets a password
    # nobody keeps so that TCP logins as superuser are refused.
    pwfile.write_text(secrets.token_urlsafe(24) + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, user=_OS_USER, group=None)
    os.chmod(pwfile, 0o600)
    try:
        _run([str(server.binaries / "initdb"), "-D", str(server.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
             what="initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def _configure(server: LocalServer, *, fast: bool) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(server.port),
        "unix_socket_directories": f"'{server.socket_dir}'",
        "unix_socket_permissions": "0700",
        "max_connections": "300",
        "logging_collector": "off",
    }
    if fast:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    conf = server.data / "postgresql.conf"
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    # Written through the server account: the data folder is its own.
    subprocess.run(_as_server_user(["sh", "-c", f"cat >> '{conf}'"]), input=lines, text=True, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geo_ibm.store.pg_local", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a server in DIR and print its store URL")
    start.add_argument("--dir", required=True, help="folder of the server (created; must be empty)")
    start.add_argument("--port", type=int, default=None)
    start.add_argument("--database", default=APP_ROLE)
    start.add_argument("--fast", action="store_true", help="no fsync (tests and benchmarks only)")
    stop = sub.add_parser("stop", help="stop the server in DIR and remove DIR")
    stop.add_argument("--dir", required=True)
    run = sub.add_parser("run", help="a throwaway server with the demo store, served by several app processes")
    run.add_argument("--events", type=int, default=20_000, help="demo events (default 20000)")
    run.add_argument("--port", type=int, action="append", help="a port of one app process (default: 5000 and 5001)")
    run.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run_demo(events=args.events, ports=args.port or [5000, 5001], host=args.host)
    folder = Path(args.dir).absolute()
    if args.command == "start":
        if folder.exists() and any(folder.iterdir()):
            parser.error(f"--dir {folder} is not empty")
        server = start_server(folder, port=args.port, database=args.database, fast=args.fast)
        url = server.url(args.database)
        (folder / "url").write_text(url + "\n")
        os.chmod(folder / "url", 0o600)
        print(url)
        return 0
    if not (folder / "data").exists():
        parser.error(f"--dir {folder} holds no server")
    LocalServer(folder=folder, port=0, password="", binaries=bin_dir()).stop()
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run_demo(*, events: int, ports: list[int], host: str) -> int:
    """Server, store, demo and app processes until Ctrl+C (see the module's command line)."""
    import signal
    import time

    server = start_server(database=APP_ROLE)
    apps: list[subprocess.Popen[bytes]] = []
    try:
        url = server.url()
        env = {**os.environ, "GEO_IBM_STORE": url, "PGPASSFILE": str(server.passfile),
               # one key for every process: a session cookie is valid whichever process answers
               "GEO_IBM_SECRET_KEY": os.environ.get("GEO_IBM_SECRET_KEY") or secrets.token_urlsafe(32)}
        cli = [sys.executable, "-m", "geo_ibm.cli", "--store", server.url(password=False)]
        subprocess.run([*cli, "init"], env=env, check=True)
        subprocess.run([*cli, "demo", "--events", str(events), "--seed", "1"], env=env, check=True)
        for port in ports:
            apps.append(subprocess.Popen([*cli, "serve", "--host", host, "--port", str(port)], env=env))
        print(f"store {server.url(password=False)} (password in {server.passfile}); app on "
              + ", ".join(f"http://{host}:{p}/" for p in ports) + "; Ctrl+C stops", flush=True)
        for number in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
            signal.signal(number, _interrupt)
        while all(a.poll() is None for a in apps):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for app in apps:
            app.terminate()
        for app in apps:
            with contextlib.suppress(subprocess.TimeoutExpired):
                app.wait(timeout=10)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
