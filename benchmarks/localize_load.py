"""Load test of `POST /v1/localize`: latency percentiles and throughput under concurrency.

Starts the API under uvicorn on 127.0.0.1 (a free port, one process, as `heimdall serve`
runs), sends one transmission of the default 7-receiver network per request from an async
httpx client with `--concurrency` requests in flight, and stops after `--requests` requests
or `--duration-s` seconds, whichever comes first. Without a registered model in
HEIMDALL_HOME it first makes a small one (3000 samples, 3 epochs, hidden_dim 32).

`--switch-after-s S` switches the default model under load: version 1 is promoted to
`production` before the server starts, and S seconds into the run version 2 (exported from
the same checkpoint when missing) is promoted, either through the API
(`--switch-via api`, which loads it before moving the alias) or straight in the registry as
another process would (`--switch-via registry`; the server sees it within its 10 s alias
TTL and loads it in the background). The report counts the answers of each version.

    .venv/bin/python benchmarks/localize_load.py [--home DIR] [--requests 3000]
        [--concurrency 8] [--duration-s 30] [--switch-after-s 5 --switch-via registry] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from heimdall.network import default_network
from heimdall.service.server import KEEP_ALIVE_S

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_model(home: Path, versions: int = 1) -> str:
    """Register a small model in `home` unless one is there (and, for a switch, a second
    version exported from the same checkpoint); return the reference of version 1 or the
    newest."""
    from heimdall.jobs.repository import get_job
    from heimdall.pipelines import TrainRequest, export, generate, open_context, train
    from heimdall.jobs.specs import best_checkpoint
    from heimdall.settings import Settings
    from heimdall.storage.tables import ModelRecord

    ctx = open_context(Settings(home=home))
    name = ctx.settings.registered_model_name
    checkpoint = None
    if ctx.tracker.latest_version(name) == 0:
        generate(ctx, "bench-load", 3000, seed=11)
        result = train(ctx, TrainRequest(dataset="bench-load", epochs=3, batch_size=128, hidden_dim=32, num_layers=1))
        checkpoint = Path(result.best_checkpoint)
        export(ctx, checkpoint)
    while ctx.tracker.latest_version(name) < versions:
        if checkpoint is None:
            with ctx.db.session() as session:
                record = session.query(ModelRecord).filter_by(name=name, version=1).one()
            checkpoint = best_checkpoint(get_job(ctx.db, record.job_id))
        export(ctx, checkpoint)
    if versions > 1:
        ctx.tracker.set_alias(name, 1, "production")
        return f"models:/{name}@production"
    return f"models:/{name}/{ctx.tracker.latest_version(name)}"


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEIMDALL_")}
    env["HEIMDALL_HOME"] = str(home)
    return env


def switch(base_url: str, home: Path, via: str) -> dict:
    """Point `production` at version 2: through the API, or in the registry directly, by
    `heimdall models promote` in another process, as an operator does from another shell
    (in this process its imports would hold the GIL and stall the load generator itself)."""
    started = time.perf_counter()
    if via == "api":
        response = httpx.post(f"{base_url}/v1/models/heimdall-localizer/2/promote", json={"alias": "production"}, timeout=120)
        status = response.status_code
    else:
        done = subprocess.run(
            [sys.executable, "-c", "from heimdall.cli import app; app()", "models", "promote", "heimdall-localizer", "2",
             "--alias", "production", "--json"],
            cwd=REPO, env=_server_env(home), capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"models promote failed: {done.stderr.strip()[-2000:]}")
        status = 200
    return {"via": via, "status": status, "seconds": round(time.perf_counter() - started, 2)}


def bodies(count: int, seed: int = 0) -> list[dict]:
    """Request bodies: 7 receivers, 2-7 of them heard at plausible 2 m levels."""
    rng = np.random.default_rng(seed)
    receivers = default_network().receivers
    out = []
    for _ in range(count):
        heard = rng.permutation(len(receivers)) < rng.integers(2, len(receivers) + 1)
        rss = rng.uniform(-125.0, -70.0, len(receivers))
        out.append(
            {
                "measurements": [
                    {
                        "receiver_id": r.receiver_id,
                        "rx_lat": r.lat_deg,
                        "rx_lon": r.lon_deg,
                        "rx_alt_m": r.alt_m,
                        "rss_dbm": round(float(rss[i]), 2) if heard[i] else None,
                    }
                    for i, r in enumerate(receivers)
                ]
            }
        )
    return out


async def load(
    base_url: str, requests: int, concurrency: int, duration_s: float,
    switch_after_s: float | None = None, switch_via: str = "api", home: Path | None = None,
) -> dict:
    payloads = bodies(256)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    models: dict[str, int] = {}
    switched: dict = {}
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        for body in payloads[:20]:  # warm-up: model load, connection pool
            (await client.post("/v1/localize", json=body)).raise_for_status()

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                body = payloads[issued % len(payloads)]
                issued += 1
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/localize", json=body)
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - start)
                        model = response.json()["model"]
                        models[model] = models.get(model, 0) + 1
                    else:
                        errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        # The window starts after the warm-up (model load), so the load lasts `duration_s`.
        started = time.perf_counter()
        deadline = started + duration_s
        async def switcher() -> None:
            if switch_after_s is None:
                return
            await asyncio.sleep(switch_after_s)
            switched.update(await asyncio.to_thread(switch, base_url, home, switch_via))

        await asyncio.gather(switcher(), *(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000.0
    return {
        "requests_ok": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "models": models,
        **({"switch": switched} if switched else {}),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 2),
            "p95": round(float(np.percentile(ms, 95)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2),
            "max": round(float(ms.max()), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="HEIMDALL_HOME with a registered model (default: a temporary one)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--switch-after-s", type=float, default=None, help="promote version 2 this far into the run")
    parser.add_argument("--switch-via", choices=("api", "registry"), default="api")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="heimdall-load-")) / "home").resolve()
    model = prepare_model(home, versions=2 if args.switch_after_s is not None else 1)
    port = _free_port()
    env = _server_env(home)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "heimdall.service.app:create_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log", "--timeout-keep-alive", str(KEEP_ALIVE_S)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit("the API did not start within 30 s")
        result = asyncio.run(
            load(base, args.requests, args.concurrency, args.duration_s, args.switch_after_s, args.switch_via, home)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "endpoint": "POST /v1/localize",
        "receivers": len(default_network()),
        "model": model,
        "concurrency": args.concurrency,
        "server": "uvicorn, 1 process",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **result,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
