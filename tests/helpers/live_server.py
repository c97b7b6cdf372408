"""A real uvicorn server around `create_app`, for the API and web page tests."""

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
from latentsync.server.worker import Pipeline
from latentsync.testing import ASSETS, write_wav

SPEECH_SECONDS = 0.4  # 10 output frames: the shortest job that still runs every stage


def short_speech(folder: Path) -> Path:
    """SPEECH_SECONDS of real speech as a 16 kHz wav in `folder`."""
    speech = load_audio(ASSETS / "demo2_audio.wav")[: int(MODEL_SAMPLE_RATE * SPEECH_SECONDS)]
    return write_wav(folder / "speech.wav", speech)


class LiveServer:
    """create_app under a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, settings: ServerSettings, pipeline: Pipeline, api_key: str | None = None) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.settings = settings
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings, pipeline), log_level="warning"))
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
