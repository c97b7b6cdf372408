"""Test helpers for the server: a live uvicorn in a thread, API calls that check the envelope, a fake pipeline.

Every wait here has a deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from latentsync.audio import load_audio
from latentsync.constants import MODEL_SAMPLE_RATE
from latentsync.server import ServerSettings, create_app
from latentsync.testing import ASSETS, write_wav

SPEECH_SECONDS = 0.4  # 10 output frames: the shortest job that still runs every stage


def short_speech(folder: Path) -> Path:
    return write_wav(
        folder / "speech.wav", load_audio(ASSETS / "demo2_audio.wav")[: int(MODEL_SAMPLE_RATE * SPEECH_SECONDS)]
    )


class LiveServer:
    """create_app under a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, settings: ServerSettings, pipeline, api_key: str | None = None, devices=()) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.settings = settings
        self.app = create_app(settings, pipeline, devices)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the server did not stop"


def upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post("/api/v3/media/upload/binary", files={"file": (path.name, f)})
    assert response.status_code == 200, response.text
    return response.json()["data"]["download_url"]


def submit(client: httpx.Client, model: str = "bytedance/latentsync", **body: object) -> dict:
    response = client.post(f"/api/v3/{model}", json={"steps": 1, **body})
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["code"] == 200 and envelope["message"] == "success"
    return envelope["data"]


def result(client: httpx.Client, job_id: str) -> dict:
    response = client.get(f"/api/v3/predictions/{job_id}/result")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait(client: httpx.Client, job_id: str, timeout: float = 120, seen: list[str] | None = None) -> dict:
    """Poll until the job is completed or failed; `seen` collects every status on the way."""
    deadline = time.monotonic() + timeout
    while True:
        data = result(client, job_id)
        if seen is not None and (not seen or seen[-1] != data["status"]):
            seen.append(data["status"])
        if data["status"] in ("completed", "failed"):
            return data
        assert time.monotonic() < deadline, f"job {job_id} still {data['status']} after {timeout} s"
        time.sleep(0.05)


def assert_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["data"] is None
    for word in words:
        assert word in body["message"], body["message"]


class FakePipeline:
    """Called like LipsyncPipeline: records its calls, sleeps `seconds`, writes a stand-in result file.
    `crash_first` raises SystemExit in the first call, which ends the worker thread as a crash would."""

    def __init__(self, name: str = "fake", seconds: float = 0.0, crash_first: bool = False) -> None:
        self.name, self.seconds, self.crash_first = name, seconds, crash_first
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, video, audio, output, **options) -> None:
        with self.lock:
            self.calls.append({"video": video, "audio": audio, "started": time.monotonic(), **options})
            crash = self.crash_first and len(self.calls) == 1
        if crash:
            raise SystemExit("the worker thread crashed")
        time.sleep(self.seconds)
        Path(output).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
