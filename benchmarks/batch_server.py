"""The server's half of the batch benchmark: API latency while a queue is full.

100 jobs are submitted by 8 client threads at once to a live server (real uvicorn on loopback), whose GPU worker
is a stand-in that takes `--job-seconds` per job, so the queue stays full; then the same 8 clients poll random
jobs' result endpoint for `--poll-seconds`. Printed: submit and result latency, p50 and p95 in milliseconds, and
the polls answered per second. The model is not what is measured (see batch.py for that); the job store, the
fetch pool and the request path are. `benchmarks/batch.py` calls `server_latency`.

Run: python benchmarks/batch_server.py [--quick] [--jobs 100] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import tempfile
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from latentsync.server import ServerSettings, create_app


class StandIn:
    """Called like the pipeline: waits, writes a placeholder result."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, video, audio, output, **options) -> None:
        time.sleep(self.seconds)
        Path(output).write_bytes(b"\0" * 1024)


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    return path


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=20)
    return {"p50_ms": round(1000 * statistics.median(samples), 1), "p95_ms": round(1000 * cuts[18], 1)}


def server_latency(jobs: int = 100, clients: int = 8, poll_seconds: float = 10.0, job_seconds: float = 1.0) -> dict:
    """Submit and result latency of a live server holding `jobs` queued jobs, polled by `clients` threads."""
    with tempfile.TemporaryDirectory() as folder:
        settings = ServerSettings(data_dir=Path(folder) / "data", min_free_bytes=0)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(create_app(settings, StandIn(job_seconds)), log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.05)
        client = httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=clients))
        try:
            sound = _wav(Path(folder) / "a.wav").read_bytes()
            inputs = [
                client.post("/api/v3/media/upload/binary", files={"file": ("a.wav", sound)}).json()["data"][
                    "download_url"
                ]
                for _ in range(jobs)
            ]

            def submit(upload: str) -> tuple[float, str]:
                start = time.perf_counter()
                response = client.post("/api/v3/bytedance/latentsync", json={"video": upload, "audio": upload})
                response.raise_for_status()
                return time.perf_counter() - start, response.json()["data"]["id"]

            with ThreadPoolExecutor(clients) as pool:
                submitted = list(pool.map(submit, inputs))
            ids = [job_id for _, job_id in submitted]

            def poll(seed: int) -> list[float]:
                rng, times = random.Random(seed), []
                stop = time.monotonic() + poll_seconds
                while time.monotonic() < stop:
                    start = time.perf_counter()
                    client.get(f"/api/v3/predictions/{rng.choice(ids)}/result").raise_for_status()
                    times.append(time.perf_counter() - start)
                return times

            with ThreadPoolExecutor(clients) as pool:
                polls = [t for times in pool.map(poll, range(clients)) for t in times]
            waiting = sum(
                client.get(f"/api/v3/predictions/{job_id}/result").json()["data"]["status"] == "created"
                for job_id in ids
            )
        finally:
            client.close()
            server.should_exit = True
            thread.join(15)
    return {
        "jobs": jobs,
        "clients": clients,
        "submit": _percentiles([t for t, _ in submitted]),
        "result": _percentiles(polls),
        "polls_per_second": round(len(polls) / poll_seconds, 1),
        "still_queued_at_end": waiting,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="poll for 3 s instead of 10")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    stats = server_latency(args.jobs, args.clients, poll_seconds=3.0 if args.quick else 10.0)
    print(
        f"server with {stats['jobs']} queued jobs, {stats['clients']} clients: "
        f"submit p50 {stats['submit']['p50_ms']} ms, p95 {stats['submit']['p95_ms']} ms; "
        f"result p50 {stats['result']['p50_ms']} ms, p95 {stats['result']['p95_ms']} ms "
        f"({stats['polls_per_second']} polls/s; {stats['still_queued_at_end']} jobs still queued at the end)"
    )
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
