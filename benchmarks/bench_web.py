"""Web app figures: map page size and load time in Chromium, and API latency under concurrent clients.

Usage::

    python benchmarks/bench_web.py                         # 10k, 100k and 1M events
    python benchmarks/bench_web.py --events 10000 100000   # fewer sizes
    python benchmarks/bench_web.py --clients 4 --requests 200

For each size a demo store is generated in a temporary folder (``geo_ibm.demo``), the app is
served by waitress on 127.0.0.1 (free port) and measured:

- the overview and hotspot map documents: bytes, server time (first, uncached request);
- the overview page in headless Debian Chromium: time from navigation until Leaflet has drawn
  the border lines in the map frame, with the map cache cold and warm;
- ``/api/stats`` and ``/api/events?limit=100`` with ``--clients`` concurrent clients using a
  Bearer token, ``--requests`` requests in all per endpoint: throughput, p50 and p95 latency.

Everything stays on 127.0.0.1; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "bench-password-1"


def build_store(folder: Path, n: int, *, seed: int = 1) -> tuple[Path, float]:
    """A demo store of ``n`` events with an admin account ``bench``; returns (path, seconds)."""
    from geo_ibm.accounts import add_user
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    start = time.perf_counter()
    path = folder / f"store-{n}.gpkg"
    store = open_store(path)
    store.init()
    events, _truth = generate_events(n, seed=seed)
    store.import_events(events, source=f"bench {n}", user="bench")
    add_user(store, "bench", "admin", PASSWORD)
    return path, time.perf_counter() - start


def serve(store: Path, instance: Path):
    """Start waitress with the app in a thread; returns (base URL, server)."""
    from waitress import create_server

    from webapp import create_app

    app = create_app({"SECRET_KEY": "bench", "STORE_PATH": str(store), "INSTANCE_PATH": str(instance)})
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", server


def fetch(url: str, token: str) -> tuple[int, float]:
    """GET ``url`` with a Bearer token; returns (bytes, seconds)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
    return len(body), time.perf_counter() - start


def browser_load(base: str, *, repeats: int = 2) -> list[float]:
    """Seconds from navigating to /overview until the map frame has drawn its border lines."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:", "about:")) else None)
        page.goto(base + "/login")
        page.fill("input[name=username]", "bench")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/overview")
        for _ in range(repeats):
            start = time.perf_counter()
            page.goto(base + "/overview?from=2020-01-01")
            frame = None
            while frame is None:
                frame = next((f for f in page.frames if "/maps/overview" in f.url), None)
                if frame is None:
                    page.wait_for_timeout(20)
            frame.wait_for_function("() => window.L && document.querySelectorAll('path.leaflet-interactive').length > 3",
                                    timeout=600_000)
            times.append(time.perf_counter() - start)
        browser.close()
    if outside:
        raise RuntimeError(f"requests left 127.0.0.1: {outside[:5]}")
    return times


def api_load(base: str, token: str, path: str, *, clients: int, requests: int) -> dict[str, float]:
    """Throughput and latency of ``path`` with ``clients`` concurrent clients."""
    fetch(base + path, token)  # warm-up
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda _i: fetch(base + path, token), range(requests)))
    wall = time.perf_counter() - start
    latencies = sorted(t for _size, t in results)
    return {
        "rps": requests / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "bytes": results[0][0],
    }


def run(sizes: list[int], *, clients: int, requests: int, browser: bool) -> None:
    from geo_ibm.accounts import new_token
    from geo_ibm.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        for n in sizes:
            store_path, build_s = build_store(folder, n)
            token = new_token(open_store(store_path), "bench")
            base, server = serve(store_path, folder / f"instance-{n}")
            try:
                print(f"\n== {n:,} events (store built in {build_s:.1f} s) ==")
                for kind in ("overview", "hotspots"):
                    size, seconds = fetch(f"{base}/maps/{kind}", token)
                    _size, cached = fetch(f"{base}/maps/{kind}", token)
                    print(f"map document {kind:<9} {size / 1024:8.0f} KiB   first {seconds:6.2f} s   cached {cached * 1000:6.0f} ms")
                if browser:
                    loads = browser_load(base)
                    print(f"overview in Chromium (cold, warm cache): {', '.join(f'{t:.2f} s' for t in loads)}")
                for path in ("/api/stats", "/api/events?limit=100"):
                    figures = api_load(base, token, path, clients=clients, requests=requests)
                    print(f"{path:<24} {clients} clients: {figures['rps']:7.1f} req/s   p50 {figures['p50_ms']:7.1f} ms"
                          f"   p95 {figures['p95_ms']:7.1f} ms   ({figures['bytes'] / 1024:.0f} KiB)")
            finally:
                server.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium page-load measurement")
    args = parser.parse_args()
    run(args.events, clients=args.clients, requests=args.requests, browser=not args.no_browser)


if __name__ == "__main__":
    main()
