"""Serving API throughput and latency vs the bare model call (issue 15).

Model: the published-width ad-hoc CNN (32 px patches, HH / HV / incidence, binary), weights from a
seeded random initialisation (the cost of a forward pass does not depend on the weights), served
on CPU from a model folder by ``eeflow serve run`` (uvicorn, one process) on 127.0.0.1.

Baseline, in the same run: the bare model call of the service on the same decoded batch: input
checks + :func:`tasks.polar.predict.normalise_bands` + forward + softmax
(``Predictor.predict_proba``), back to back for ``--bare-seconds`` from ``--bare-threads`` threads
(default: one per CPU, so the baseline may use the whole machine as the server does), once
before and once after the service run; the faster of the two is the baseline. Every torch
call runs one intra-op thread (``torch.set_num_threads(1)`` here, ``OMP_NUM_THREADS=1`` for the
server): on a shared box intra-op threads fight other processes and made single calls 8x slower.

Service: ``--clients`` concurrent async httpx clients (default 50) POST the same batch of
``--batch`` patches (base64 float32, ``inputs_b64``) for ``--seconds`` (default 30) with a valid
key; every response must be 200. Then one client alone for 100 requests (latency without queueing).

Prints ``serving: ratio=<bare throughput / service throughput>, ...`` (the bare model call is
the baseline; no goal, measured) and writes ``bench/results/serving.json``.
Run: .venv/bin/python bench/serving.py [--seconds 30] [--clients 50] [--batch 16] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import add_quick_flag, report  # noqa: E402


def write_model(folder: Path) -> Path:
    """A polar model folder (model.json + model.pt) of the full-width ad-hoc CNN."""
    import torch

    from tasks.models.ice_zoo import build_model

    torch.manual_seed(0)
    net = build_model("adhoc_cnn", 2, 3, 32, 0.5, 1.0)
    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / "model.pt")
    meta = {"name": "adhoc_cnn", "architecture": "adhoc_cnn", "class_scheme": "binary",
            "classes": ["water", "ice"], "bands": ["HH", "HV", "incidence"],
            "band_mean": [-18.0, -26.0, 35.0], "band_std": [4.0, 4.0, 8.0], "patch_size": 32,
            "hyperparameters": {"dropout": 0.5, "width_multiplier": 1.0},
            "weights": "model.pt", "dataset_version": "bench-random-init",
            "created": "2026-01-01T00:00:00+00:00"}
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(array, 50)), 2),
            "p99_ms": round(float(np.percentile(array, 99)), 2),
            "mean_ms": round(float(array.mean()), 2)}


def bare(model_dir: Path, batch: np.ndarray, seconds: float, threads: int) -> dict[str, float]:
    """The bare model call back to back from ``threads`` threads (one torch thread each)."""
    from concurrent.futures import ThreadPoolExecutor

    from tasks.serving.predictors import check_batch, load_predictor

    predictor = load_predictor("polar", model_dir)
    bands = predictor.spec.bands
    for _ in range(5):
        predictor.predict_proba(check_batch(batch, predictor.spec, bands, 512))
    stop = time.perf_counter() + seconds

    def loop() -> list[float]:
        latencies = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            predictor.predict_proba(check_batch(batch, predictor.spec, bands, 512))
            latencies.append(time.perf_counter() - t0)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = [t for part in pool.map(lambda _: loop(), range(threads)) for t in part]
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "threads": threads,
            "throughput_rps": round(len(latencies) / elapsed, 2), **percentiles(latencies)}


async def load(url: str, headers: dict[str, str], body: bytes, clients: int,
               seconds: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    failures: dict[int | str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=60) as client:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/models/sea-ice/predict", content=body)
                except httpx.TransportError as err:
                    name = type(err).__name__
                    failures[name] = failures.get(name, 0) + 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failures[response.status_code] = failures.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "failures": failures,
            "throughput_rps": round(len(latencies) / elapsed, 2), **percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--bare-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--bare-threads", type=int, default=os.cpu_count() or 1,
                        help="threads calling the bare model (default: the CPU count)")
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.bare_seconds, args.clients = 3.0, 1.5, 5
    import torch

    torch.set_num_threads(1)  # the server gets OMP_NUM_THREADS=1 too: concurrency from threads
    import httpx
    import yaml

    from tasks.serving.keys import ApiKeyStore

    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_dir = write_model(root / "model")
    rng = np.random.default_rng(0)
    batch = (rng.normal(0, 1, (args.batch, 3, 32, 32)) * 4
             + np.array([-18.0, -26.0, 35.0])[None, :, None, None]).astype(np.float32)
    config = root / "serving.yaml"
    config.write_text(yaml.safe_dump({
        "use_case": "serving", "data_root": str(root),
        "models": {"sea-ice": {"project": "bench", "use_case": "polar", "source": "folder",
                               "path": str(model_dir)}}}))
    key, _ = ApiKeyStore(root / "serving" / "api_keys.sqlite").create("bench")
    body = json.dumps({"bands": ["HH", "HV", "incidence"], "shape": list(batch.shape),
                       "inputs_b64": base64.b64encode(batch.tobytes()).decode()}).encode()
    print(f"bare model call for {args.bare_seconds:.0f} s ...", flush=True)
    bare_result = bare(model_dir, batch, args.bare_seconds, args.bare_threads)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "tasks.cli", "serve", "run", "--host",
                               "127.0.0.1", "--port", str(port), "--config", str(config)],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONWARNINGS": "ignore",
                                   "OMP_NUM_THREADS": "1"})
    headers = {"X-API-Key": key, "content-type": "application/json"}
    try:
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the serving API did not start")
        warm = httpx.post(f"{url}/v1/models/sea-ice/predict", headers=headers, content=body,
                          timeout=60)
        if warm.status_code != 200:
            raise RuntimeError(f"warm-up request failed: {warm.status_code} {warm.text}")
        print(f"{args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        service = asyncio.run(load(url, headers, body, args.clients, args.seconds))
        serial = asyncio.run(load(url, headers, body, 1, min(5.0, args.seconds)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"bare model call again for {args.bare_seconds:.0f} s ...", flush=True)
    bare_after = bare(model_dir, batch, args.bare_seconds, args.bare_threads)
    # the box is shared: keep the faster of the two baselines (the larger, conservative ratio)
    bare_before = bare_result
    bare_result = max(bare_before, bare_after, key=lambda r: r["throughput_rps"])
    ratio = bare_result["throughput_rps"] / service["throughput_rps"]
    result = {
        "model": "adhoc_cnn width 1.0, 32 px, 3 bands, binary (random init), CPU",
        "batch_patches": args.batch, "clients": args.clients, "seconds": args.seconds,
        "body_bytes": len(body), "cpu_count": os.cpu_count(),
        "torch_threads_per_call": 1, "load_average_1m": round(os.getloadavg()[0], 2),
        "bare": bare_result, "bare_before": bare_before, "bare_after": bare_after,
        "service": service, "service_one_client": serial,
        "ratio_bare_over_service_throughput": round(ratio, 3),
        "overhead_ms_one_client": round(serial["p50_ms"] - bare_result["p50_ms"], 2),
    }
    print(json.dumps(result, indent=2))
    report("serving", ratio, "none (measured)", None, result,
           baseline="the bare model call (Predictor.predict_proba) on the same batch",
           quick=args.quick)
    print(f"SERVING: ratio={ratio:.2f}, service_rps={service['throughput_rps']}, "
          f"bare_rps={bare_result['throughput_rps']}, p50_ms={service['p50_ms']}, "
          f"p99_ms={service['p99_ms']}, one_client_p50_ms={serial['p50_ms']}, "
          f"bare_p50_ms={bare_result['p50_ms']}, failures={service['failures']}, "
          f"batch={args.batch}, clients={args.clients}")


if __name__ == "__main__":
    main()
