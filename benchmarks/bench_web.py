"""Web speed under concurrent use: wrk against our endpoints and against pygeoapi on the same table.

Usage::

    python benchmarks/bench_web.py                       # 50,000 events, 50 connections, 30 s each
    python benchmarks/bench_web.py --events 1000000 --duration 10
    python benchmarks/bench_web.py --skip-pygeoapi

A demo store is generated in a temporary folder, our app is served by waitress (8 threads)
in its own process, and pygeoapi (0.21, its Flask app under the same waitress settings) by
another, publishing the store's ``events`` table through its SQLite/GeoPackage provider (on a
copy of the file, as pygeoapi's provider writes SpatiaLite's GeoPackage helpers into it).
Debian's ``wrk`` then drives each endpoint with ``--connections`` connections for
``--duration`` seconds, and once with a single connection; the figures printed are requests
per second and the 50th and 99th latency percentiles, with wrk's count of non-2xx answers, and
the CPU time our server process spent per answer during the run (from ``/proc``: user + system,
all its threads). Before the wrk runs, each of our endpoints is asked ``--cpu-requests`` times in
this process through Flask's test client, one request at a time, and the CPU time per request
is printed (best of five rounds): the cost the server pays per answer, far less noisy than wrk
on a shared machine. The load average is printed before and after the wrk runs.

pygeoapi's SQLite provider needs ``mod_spatialite`` (Debian's ``libsqlite3-mod-spatialite``)
and a ``sqlite3`` module that can load extensions; when Python's own cannot,
``pysqlite3-binary`` (PyPI) stands in for it in pygeoapi's process only.

Everything stays on 127.0.0.1; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

BBOX = "6.05,49.55,6.20,49.65"
"""A lon/lat box around the city of Luxembourg and its southern motorways (dense in the demo)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_store(folder: Path, n: int) -> tuple[Path, dict[str, str]]:
    """A demo store of ``n`` events with one account per role and a token each."""
    from geo_ibm.accounts import ROLES, add_user, new_token
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    path = folder / "store.gpkg"
    store = open_store(path)
    store.init()
    events, _truth = generate_events(n, seed=1)
    store.import_events(events, source=f"bench {n}", user="bench")
    tokens = {}
    for role in ROLES:
        add_user(store, f"bench-{role}", role, "bench-password-1")
        tokens[role] = new_token(store, f"bench-{role}")
    return path, tokens


OUR_SERVER = textwrap.dedent(
    """
    import sys
    from waitress import serve
    from webapp import create_app
    import logging
    store, instance, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # waitress warns at every queued task once the 8 threads are busy: thousands of lines a run
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app({"SECRET_KEY": "bench", "STORE_PATH": store, "INSTANCE_PATH": instance,
                      "PUBLIC_URL": f"http://127.0.0.1:{port}"})
    serve(app, host="127.0.0.1", port=port, threads=8, connection_limit=200, _quiet=True)
    """
)

SQLITE_SHIM = textwrap.dedent(
    """
    import sys
    try:
        import sqlite3
        sqlite3.connect(":memory:").enable_load_extension
    except AttributeError:
        import pysqlite3
        sys.modules["sqlite3"] = pysqlite3
    """
)

PYGEOAPI_OPENAPI = SQLITE_SHIM + textwrap.dedent(
    """
    from pygeoapi import cli
    sys.argv = ["pygeoapi", "openapi", "generate", sys.argv[1], "--output-file", sys.argv[2]]
    cli()
    """
)

PYGEOAPI_SERVER = SQLITE_SHIM + textwrap.dedent(
    """
    import logging
    from waitress import serve
    from pygeoapi.flask_app import APP
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    serve(APP, host="127.0.0.1", port=int(sys.argv[1]), threads=8, connection_limit=200, _quiet=True)
    """
)


def pygeoapi_config(data: Path, port: int) -> str:
    return textwrap.dedent(
        f"""
        server:
          bind: {{host: 127.0.0.1, port: {port}}}
          url: http://127.0.0.1:{port}
          mimetype: application/json; charset=UTF-8
          encoding: utf-8
          languages: [en-US]
          limits: {{default_items: 100, max_items: 10000}}
          map: {{url: "http://127.0.0.1/none", attribution: none}}
        logging: {{level: ERROR}}
        metadata:
          identification:
            title: {{en: bench}}
            description: {{en: bench}}
            keywords: {{en: [bench]}}
            keywords_type: theme
            terms_of_service: none
            url: http://127.0.0.1
          license: {{name: none, url: http://127.0.0.1}}
          provider: {{name: bench, url: http://127.0.0.1}}
          contact: {{name: bench, position: bench, address: bench, city: bench, stateorprovince: bench,
                    postalcode: "0", country: LU, phone: "0", fax: "0", email: bench@example.org, url: http://127.0.0.1,
                    hours: always, instructions: none, role: pointOfContact}}
        resources:
          events:
            type: collection
            title: events
            description: interception events
            keywords: [events]
            extents:
              spatial: {{bbox: [5.7, 49.4, 6.6, 50.2], crs: http://www.opengis.net/def/crs/OGC/1.3/CRS84}}
            providers:
              - type: feature
                name: SQLiteGPKG
                data: {data}
                id_field: fid
                table: events
        """
    )


def wait_for(url: str, headers: dict[str, str] | None = None, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
                response.read()
                return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used; NaN without ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def in_process_cpu(store: Path, instance: Path, endpoints: list[tuple[str, str, str, str]], tokens: dict[str, str],
                   *, requests: int) -> dict[str, float]:
    """CPU ms per request of each endpoint, one request at a time through Flask's test client (best of 5 rounds)."""
    from webapp import create_app

    app = create_app({"SECRET_KEY": "bench", "STORE_PATH": str(store), "INSTANCE_PATH": str(instance),
                      "PUBLIC_URL": "http://127.0.0.1"})
    client = app.test_client()
    out = {}
    for name, url, role, _target in endpoints:
        path = "/" + url.split("/", 3)[3]
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        client.get(path, headers=headers).close()  # the answer is then cached, as under wrk
        rounds = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(requests):
                client.get(path, headers=headers).close()
            rounds.append((time.process_time() - start) / requests * 1000)
        out[name] = min(rounds)
    return out


def wrk(url: str, *, connections: int, duration: float, token: str | None = None,
        pid: int | None = None) -> dict[str, float | str]:
    """One wrk run: requests per second, p50 and p99 latency (ms), non-2xx answers, server CPU ms per request."""
    args = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration:g}s", "--latency",
            "--timeout", "30s"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    cpu_before = process_cpu_s(pid) if pid else float("nan")
    out = subprocess.run([*args, url], capture_output=True, text=True).stdout
    cpu = process_cpu_s(pid) - cpu_before if pid else float("nan")

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    done = re.search(r"^\s*(\d+) requests in", out, re.M)
    answers = int(done.group(1)) if done else 0
    return {"rps": float(rps.group(1)) if rps else float("nan"), "p50": ms("50"), "p99": ms("99"),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": errors.group(0) if errors else "",
            "cpu_ms": cpu * 1000 / answers if answers else float("nan")}


def row(name: str, result: dict[str, float | str], target: str = "") -> str:
    return (f"{name:<58} {result['rps']:>9.1f} {result['p50']:>9.1f} {result['p99']:>9.1f} "
            f"{result['non2xx']:>7} {result.get('cpu_ms', float('nan')):>8.2f} {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--skip-pygeoapi", action="store_true")
    parser.add_argument("--cpu-requests", type=int, default=200,
                        help="requests per round of the in-process CPU measurement (0: skip it)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    processes = []
    try:
        start = time.perf_counter()
        store, tokens = build_store(folder, args.events)
        print(f"store of {args.events:,} events built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        ours = free_port()
        env = {**os.environ, "GEO_IBM_STORE": str(store)}
        server = subprocess.Popen([sys.executable, "-c", OUR_SERVER, str(store), str(folder / "instance"), str(ours)],
                                  env=env)
        processes.append(server)
        base = f"http://127.0.0.1:{ours}"
        wait_for(f"{base}/api/layers", {"Authorization": f"Bearer {tokens['analyst']}"})
        theirs = None
        if not args.skip_pygeoapi:
            copy = folder / "pygeoapi.gpkg"
            shutil.copyfile(store, copy)
            port = free_port()
            config = folder / "pygeoapi.yml"
            config.write_text(pygeoapi_config(copy, port), encoding="utf-8")
            openapi = folder / "pygeoapi-openapi.yml"
            penv = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
            generated = subprocess.run([sys.executable, "-c", PYGEOAPI_OPENAPI, str(config), str(openapi)], env=penv,
                                       capture_output=True, text=True)
            if generated.returncode != 0:
                sys.exit("pygeoapi openapi generate failed: " + generated.stderr[-2000:])
            # pygeoapi logs a traceback per failed request (its SQLite provider creates a view
            # per request and races under concurrency): kept in a file, counted at the end.
            pygeoapi_log = open(folder / "pygeoapi.log", "w", encoding="utf-8")
            processes.append(subprocess.Popen([sys.executable, "-c", PYGEOAPI_SERVER, str(port)], env=penv,
                                              stdout=pygeoapi_log, stderr=subprocess.STDOUT))
            theirs = f"http://127.0.0.1:{port}"
            wait_for(f"{theirs}/collections/events/items?limit=1&f=json")

        endpoints = [
            ("/api/stats", f"{base}/api/stats", "viewer", "p99 <= 200 ms"),
            ("/api/stats?quarter=2025Q3&region=Sud-Ouest", f"{base}/api/stats?quarter=2025Q3&region=Sud-Ouest",
             "analyst", "p99 <= 200 ms"),
            ("/ogc/collections/events/items?limit=100&bbox=…", f"{base}/ogc/collections/events/items?limit=100&bbox={BBOX}",
             "analyst", "p99 <= 300 ms, >= 3x pygeoapi"),
            ("/maps/overview (cached map document)", f"{base}/maps/overview", "analyst", "p99 <= 500 ms"),
        ]
        for _name, url, role, _target in endpoints:  # warm the caches once
            urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {tokens[role]}"})).read()
        if args.cpu_requests > 0:
            cpu = in_process_cpu(store, folder / "instance-cpu", endpoints, tokens, requests=args.cpu_requests)
            print(f"\nCPU per request in this process (Flask test client, one at a time, best of 5 x "
                  f"{args.cpu_requests}):")
            for name, value in cpu.items():
                print(f"{name:<58} {value:>8.2f} ms")
        print(f"\n{args.events:,} events; wrk, {args.connections} connections, {args.duration:g} s each "
              f"(2 shared cores: server, wrk and the other server compete); load average {load_average()}")
        print(f"{'endpoint':<58} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>7} {'CPU ms':>8} target")
        for name, url, role, target in endpoints:
            print(row(name, wrk(url, connections=args.connections, duration=args.duration, token=tokens[role],
                                pid=server.pid), target))
        if theirs:
            url = f"{theirs}/collections/events/items?limit=100&bbox={BBOX}&f=json"
            print(row("pygeoapi /collections/events/items?limit=100&bbox=…", wrk(url, connections=args.connections,
                                                                                   duration=args.duration), "reference"))
        print("\nsingle connection:")
        single = wrk(f"{base}/ogc/collections/events/items?limit=100&bbox={BBOX}", connections=1, duration=args.duration / 2,
                     token=tokens["analyst"], pid=server.pid)
        print(row("ours: /ogc/collections/events/items?limit=100&bbox=…", single))
        if theirs:
            reference = wrk(f"{theirs}/collections/events/items?limit=100&bbox={BBOX}&f=json", connections=1,
                            duration=args.duration / 2)
            print(row("pygeoapi: /collections/events/items?limit=100&bbox=…", reference))
            print(f"ours / pygeoapi, single connection: {single['rps'] / reference['rps']:.1f}x")
            log_text = (folder / "pygeoapi.log").read_text(encoding="utf-8", errors="replace")
            print(f"pygeoapi logged {log_text.count('Traceback')} failed requests (its non-2xx above)")
        print(f"load average after the runs: {load_average()}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
