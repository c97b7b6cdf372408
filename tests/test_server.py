"""`latentsync serve` end to end: real uvicorn on loopback, tiny random-weight models, the real clips.

One in-process server is shared by most tests (jobs with steps=1 and 0.4 s of speech take a few seconds);
the restart test runs the real command in a subprocess so that it can be stopped in the middle of a job.
"""

from __future__ import annotations

import functools
import http.server
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import get_args

import httpx
import numpy as np
import pytest
import torch
from helpers.serverkit import SPEECH_SECONDS, LiveServer, assert_error, result, short_speech, submit, upload, wait

from latentsync import cli
from latentsync.media import SYNC_MODES, VideoWriter, probe
from latentsync.server import MODELS, ServerSettings
from latentsync.server.fetch import FetchError, FetchPolicy, blocked_reason, fetch
from latentsync.server.jobs import JobStore
from latentsync.server.schemas import LipsyncRequest
from latentsync.server.storage import Storage, UnknownFile
from latentsync.testing import ASSETS, TinyModels, write_tiny_models, write_wav

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)  # the test file server's address, and nothing else


# --- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyModels:
    return write_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def pipeline(tiny):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one for the worker, one for the test and the API
    yield tiny.load_pipeline()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    wall = folder / "wall.mp4"  # no face, and no sound
    with VideoWriter(wall, 320, 240, fps=25) as writer:
        for i in range(10):
            writer.write(np.full((240, 320, 3), 60 + i, np.uint8))
    text = folder / "notes.mp4"
    text.write_text("not a video")
    page = folder / "page.html"
    page.write_text("<script>alert(localStorage.getItem('latentsync-api-key'))</script>")
    return {
        "speech": short_speech(folder),
        "wall": wall,
        "text": text,
        "page": page,
        "long": write_wav(folder / "long.wav", np.zeros(8000 * 40), rate=8000),  # 40 s of silence, 640 kB
    }


class FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; /redirect?<url> redirects there, /slow sends its headers and then stalls."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("?")[2])
            self.end_headers()
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(3)
        else:
            super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def file_server(tmp_path_factory, media):
    """A loopback file server with the real clips and the test speech, as a client's storage would be."""
    folder = tmp_path_factory.mktemp("served")
    for name in ("demo1_video.mp4", "demo3_video.mp4"):
        (folder / name).symlink_to(ASSETS / name)
    (folder / "speech.wav").symlink_to(media["speech"])
    (folder / "notes.mp4").symlink_to(media["text"])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(FileHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory, pipeline):
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("data"),
        max_duration=30,
        max_upload_bytes=5 * 1024 * 1024,
        max_download_bytes=5 * 1024 * 1024,
        download_timeout=20,
        allow_networks=LOOPBACK_ONLY,
    )
    live = LiveServer(settings, pipeline)
    yield live
    live.stop()


class Uploads(dict):
    """Each medium uploaded on first use in a test: an upload is deleted once the jobs that use it have ended."""

    def __init__(self, client: httpx.Client, media: dict[str, Path]) -> None:
        super().__init__()
        self.client, self.media = client, media

    def __missing__(self, name: str) -> str:
        self[name] = upload(self.client, self.media[name])
        return self[name]


@pytest.fixture
def uploads(server, media) -> Uploads:
    return Uploads(server.client, media)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the API ----------------------------------------------------------------------------------------------------
def test_uploaded_and_fetched_inputs_run_in_order_to_playable_videos(server, file_server, media) -> None:
    client = server.client  # no Authorization header: a server without LATENTSYNC_API_KEY needs none
    video_url = upload(client, ASSETS / "demo1_video.mp4")
    uploaded = client.post("/api/v3/media/upload/binary", files={"file": ("speech.wav", media["speech"].read_bytes())})
    assert uploaded.json()["data"] | {"download_url": ""} == {
        "type": "audio",
        "download_url": "",
        "filename": "speech.wav",
        "size": media["speech"].stat().st_size,
    }
    audio_url = uploaded.json()["data"]["download_url"]
    assert client.get(audio_url).content == media["speech"].read_bytes()
    page = client.get(upload(client, media["page"]))  # served back, but never as a page of this origin
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-security-policy"] == "sandbox"

    first = submit(client, video=video_url, audio=audio_url)
    second = submit(
        client,
        "sync/lipsync-1.9.0-beta",
        video=f"{file_server}/demo3_video.mp4",
        audio=f"{file_server}/speech.wav",
        sync_mode="cut_off",
    )
    assert first["status"] == "created" and first["outputs"] == [] and first["error"] == ""
    assert first["model"] == "bytedance/latentsync" and second["model"] == "sync/lipsync-1.9.0-beta"
    assert second["status"] == "created" and second["jobs_ahead"] >= 1
    assert first["urls"]["get"] == f"{server.url}/api/v3/predictions/{first['id']}/result"
    assert datetime.fromisoformat(first["created_at"].replace("Z", "+00:00")).tzinfo is not None
    assert first["has_nsfw_contents"] == [] and first["timings"] == {"inference": 0}

    seen_first: list[str] = []
    while True:
        second_status = result(client, second["id"])["status"]  # read first: it cannot start while the first runs
        seen_first.append(result(client, first["id"])["status"])
        if seen_first[-1] not in ("created", "processing"):
            break
        assert second_status == "created"  # one worker, in submission order
        started = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - started < 5, "the API must keep answering while a job runs"
        time.sleep(0.1)
    assert "processing" in seen_first
    seen_second: list[str] = []
    done = [wait(client, first["id"]), wait(client, second["id"], seen=seen_second)]
    assert seen_second[-2:] == ["processing", "completed"]

    for job, source in zip(done, ("demo1_video.mp4", "demo3_video.mp4")):
        assert job["status"] == "completed" and job["error"] == "" and job["progress"] == 1
        assert job["timings"]["inference"] > 0
        assert job["outputs"][0].startswith(f"{server.url}/api/v3/predictions/{job['id']}/output.mp4?expires=")
        response = client.get(job["outputs"][0])
        assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
        path = server.settings.data_dir / f"downloaded-{job['id']}.mp4"
        path.write_bytes(response.content)
        info, src = probe(path), probe(ASSETS / source)
        assert (info.width, info.height) == (src.width, src.height)
        assert info.fps == 25 and info.frame_count == round(25 * SPEECH_SECONDS) and info.has_audio


def test_every_hosted_endpoint_takes_a_job_under_its_model_name(server, media) -> None:
    for model in MODELS:
        text = upload(server.client, media["text"])  # an upload lasts until the jobs using it have ended
        job = submit(server.client, model, video=text, audio=text, sync_mode="loop", guidance_scale=1.0, seed=7)
        assert job["model"] == model and job["status"] == "created"
        assert wait(server.client, job["id"])["status"] == "failed"
    assert set(get_args(LipsyncRequest.model_fields["sync_mode"].annotation)) == set(SYNC_MODES)


@pytest.mark.parametrize(
    "case",
    [
        "not media",
        "no face",
        "no audio",
        "too long",
        "unreachable URL",
        "redirect to a private address",
        "missing on the file server",
    ],
)
def test_a_bad_input_fails_its_job_with_a_clear_error_and_the_server_keeps_serving(
    server, file_server, uploads, case
) -> None:
    client = server.client
    video, speech = f"{file_server}/demo1_video.mp4", f"{file_server}/speech.wav"
    private = file_server.replace("127.0.0.1", "127.0.0.2")  # loopback, but outside the operator's allowance
    inputs, words = {
        "not media": ((uploads["text"], speech), ["video", "not a readable media file"]),
        "no face": ((uploads["wall"], speech), ["no face"]),
        "no audio": ((video, uploads["wall"]), ["audio", "no audio stream"]),
        "too long": ((video, uploads["long"]), ["audio is 40.0 s long", "up to 30 s"]),
        "unreachable URL": ((f"http://127.0.0.1:{closed_port()}/face.mp4", speech), ["video", "cannot connect"]),
        "redirect to a private address": ((f"{file_server}/redirect?{private}/x", speech), ["127.0.0.2 is a loopback"]),
        "missing on the file server": ((f"{file_server}/nope.mp4", speech), ["HTTP 404"]),
    }[case]
    job = wait(client, submit(client, video=inputs[0], audio=inputs[1])["id"])
    assert job["status"] == "failed" and job["outputs"] == []
    for word in words:
        assert word in job["error"]
    assert str(server.settings.data_dir) not in job["error"]  # the server's paths are its own business
    assert client.get("/health").json()["status"] == "ok"
    assert_error(client.get(f"/api/v3/predictions/{job['id']}/output.mp4"), 404, "status: failed")


def test_api_docs_work_offline(server) -> None:
    client = server.client
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "cdn" not in page.text.lower() and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert "/api/v3/sync/lipsync-3" in client.get("/openapi.json").json()["paths"]


def test_requests_that_can_never_work_are_refused_in_the_envelope(server, uploads) -> None:
    client = server.client
    speech = uploads["speech"]
    refused = {
        "file URL": ({"video": "file:///etc/passwd", "audio": speech}, "not an http(s) URL"),
        "unknown scheme": ({"video": "gopher://example.com/x.mp4", "audio": speech}, "not an http(s) URL"),
        "private address": (
            {"video": "http://127.0.0.2/face.mp4", "audio": speech},
            ["127.0.0.2 is a loopback", "--allow-url-network"],
        ),
        "private network": ({"video": "http://10.1.2.3:8080/face.mp4", "audio": speech}, "10.1.2.3 is a private"),
        "metadata service": ({"video": "http://169.254.169.254/latest", "audio": speech}, "link-local"),
        "unknown upload": (
            {"video": f"{server.url}/api/v3/media/uploads/{'0' * 32}.mp4", "audio": speech},
            "no upload named",
        ),
        "upload path escape": (
            {"video": f"{server.url}/api/v3/media/uploads/..%2Fjobs.sqlite3", "audio": speech},
            "no upload named",
        ),
        "sync mode": ({"video": speech, "audio": speech, "sync_mode": "stretch"}, "sync_mode"),
        "steps": ({"video": speech, "audio": speech, "steps": 0}, "steps"),
        "missing audio": ({"video": speech}, "audio: Field required"),
    }
    for body, words in refused.values():
        assert_error(
            client.post("/api/v3/bytedance/latentsync", json=body), 400, *([words] if isinstance(words, str) else words)
        )
    assert_error(
        client.post("/api/v3/sync/lipsync-3", content=b"{oops", headers={"Content-Type": "application/json"}),
        400,
        "invalid request",
    )
    assert_error(client.get(f"/api/v3/predictions/{'f' * 32}/result"), 404, "no prediction")
    assert_error(client.get("/api/v3/predictions/..%2F..%2Fjobs/result"), 404)
    assert_error(client.get("/api/v3/media/uploads/..%2Fjobs.sqlite3"), 404)
    assert_error(client.post("/api/v3/media/upload/binary", files={"file": ("empty.wav", b"")}), 400, "empty")
    too_big = np.random.default_rng(0).bytes(6 * 1024 * 1024)
    assert_error(client.post("/api/v3/media/upload/binary", files={"file": ("big.mp4", too_big)}), 413, "up to 5 MB")
    assert client.get("/health").status_code == 200


def test_a_hundred_submissions_all_queue(server, file_server) -> None:
    text = f"{file_server}/notes.mp4"  # jobs that fail at once: the queue is what is measured

    def one(_: int) -> dict:
        return submit(server.client, video=text, audio=text)

    with ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(one, range(100)))
    assert len({job["id"] for job in jobs}) == 100 and all(job["status"] == "created" for job in jobs)
    for job in jobs:
        assert "not a readable media file" in wait(server.client, job["id"])["error"]


def test_the_api_key_guards_every_endpoint_but_the_health_check(tmp_path, pipeline, media) -> None:
    live = LiveServer(ServerSettings(data_dir=tmp_path, api_key="s3cret"), pipeline, api_key="s3cret")
    try:
        anonymous = httpx.Client(base_url=live.url, timeout=30)
        wrong = httpx.Client(base_url=live.url, timeout=30, headers={"Authorization": "Bearer guess"})
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/").status_code == 200  # the page holds no data; its API calls send the key
        text = upload(live.client, media["text"])
        assert live.client.get(text).content == media["text"].read_bytes()
        job = submit(live.client, video=text, audio=text)
        for client in (anonymous, wrong):
            assert_error(
                client.post("/api/v3/bytedance/latentsync", json={"video": text, "audio": text}),
                401,
                "Authorization: Bearer",
            )
            assert client.post("/api/v3/media/upload/binary", files={"file": ("a.wav", b"x")}).status_code == 401
            response = client.get(f"/api/v3/predictions/{job['id']}/result")
            assert_error(response, 401, "LATENTSYNC_API_KEY")
            assert response.headers["www-authenticate"] == "Bearer"
            assert client.get(text).status_code == 401
        assert wait(live.client, job["id"])["status"] == "failed"
    finally:
        live.stop()


# --- the parts on their own ---------------------------------------------------------------------------------------
def test_serve_takes_the_model_options_and_network_allowances() -> None:
    parse = cli.build_parser().parse_args
    args = parse(
        [
            "serve",
            "--data-dir",
            "d",
            "--allow-url-network",
            "10.0.0.0/8",
            "--allow-url-network",
            "::1",
            "--unet-checkpoint",
            "u.pt",
            "--version",
            "1.5",
            "--max-duration",
            "60",
        ]
    )
    assert args.allow_url_network == [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert (args.unet_checkpoint, args.version, args.max_duration, args.port) == ("u.pt", "1.5", 60, 8000)
    with pytest.raises(SystemExit):
        parse(["serve", "--allow-url-network", "the intranet"])


def test_half_written_results_of_a_hard_stop_are_removed_at_start(tmp_path) -> None:
    storage = Storage(tmp_path / "data")
    orphan = storage.results / f".{'a' * 32}.0123456789ab.partial.mp4"
    orphan.write_bytes(b"cut off")
    done = storage.result("b" * 32)
    done.write_bytes(b"a finished video")
    Storage(tmp_path / "data")
    assert not orphan.exists() and done.exists()


def test_ids_and_file_names_stay_inside_the_data_dir(tmp_path) -> None:
    storage = Storage(tmp_path / "data")
    evil = storage.new_upload("../../../etc/cron.d/x.SH")
    assert evil.parent == storage.uploads and evil.suffix == ".sh"
    assert storage.new_upload("clip.mp4/..").suffix == "" and storage.new_upload(None).parent == storage.uploads
    for name in ("../jobs.sqlite3", "..", "", f"{'a' * 32}/../../x", f"{'a' * 32}.mp4"):
        with pytest.raises(UnknownFile):
            storage.upload(name)
    with pytest.raises(UnknownFile):
        storage.upload_for_url("http://host/api/v3/media/uploads/..%2F..%2Fjobs.sqlite3")
    assert storage.upload_for_url("https://example.com/api/v3/media/upload/binary") is None
    for job_id in ("../../etc", "A" * 32, "x"):
        with pytest.raises(UnknownFile):
            storage.result(job_id)


def test_a_job_cut_off_twice_is_failed_with_the_reason(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.create("bytedance/latentsync", {"video": "v", "audio": "a"})
    waiting = store.create("bytedance/latentsync", {"video": "v", "audio": "a"})
    for each in (job, waiting):
        assert store.claim_fetch("fetcher").id == each.id and store.fetched(each.id, "fetcher")
    assert store.claim_next("gpu0").id == job.id

    def gone(owner: str) -> bool:
        return owner == "gpu0"

    assert store.recover(0, gone) == (1, [])  # first stop: run again, still first in line (after a new fetch)
    assert store.get(job.id).status == "created" and store.claim_fetch("fetcher").id == job.id
    store.fetched(job.id, "fetcher")
    assert store.claim_next("gpu0").id == job.id
    assert store.recover(0, gone) == (0, [job.id])  # second stop during the same job: it may be what kills the server
    failed = store.get(job.id)
    assert failed.status == "failed" and "stopped while running this job, 2 times" in failed.error
    assert store.get(waiting.id).status == "created" and store.claim_next("gpu0").id == waiting.id


@pytest.mark.parametrize(
    "address, reason",
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("fd00::1", "private"),
        ("0.0.0.0", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "not a public"),
        ("224.0.0.1", "not a public"),
    ],
)
def test_only_public_addresses_are_fetched_from_by_default(address, reason) -> None:
    verdict = blocked_reason(ipaddress.ip_address(address))
    assert verdict is None if reason is None else reason in verdict
    everything = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert blocked_reason(ipaddress.ip_address(address), everything) is None  # the operator may allow any network


def test_fetch_keeps_to_its_size_time_and_redirect_limits(file_server, media, tmp_path) -> None:
    dest = tmp_path / "got"
    allowed = FetchPolicy(max_bytes=2**20, timeout=5, allow_networks=LOOPBACK_ONLY)
    fetch(f"{file_server}/redirect?/speech.wav", dest, allowed)
    assert dest.read_bytes() == media["speech"].read_bytes()
    cases = {
        f"{file_server}/demo1_video.mp4": ("1 MB download limit", allowed),  # 1.2 MB
        f"{file_server}/speech.wav": ("127.0.0.1 is a loopback address", FetchPolicy(2**20, 5)),  # no allowance
        f"{file_server}/redirect?file:///etc/passwd": ("not an http(s) URL", allowed),
        f"{file_server}/redirect?/redirect?/redirect?/redirect?/redirect?/redirect?/speech.wav": ("redirects", allowed),
        f"{file_server}/slow": ("0.5 s download limit", FetchPolicy(2**20, 0.5, LOOPBACK_ONLY)),
        "ftp://127.0.0.1/x": ("not an http(s) URL", allowed),
    }
    for url, (words, policy) in cases.items():
        started = time.monotonic()
        with pytest.raises(FetchError, match=re.escape(words)):
            fetch(url, dest, policy)
        assert time.monotonic() - started < 2


# --- the real command -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_restart_in_the_middle_of_the_queue_loses_no_job(tiny, pipeline, media, tmp_path, caplog) -> None:
    """`latentsync serve` is stopped while a job runs; a server started again on its data dir finishes the queue."""
    data, port = tmp_path / "data", closed_port()
    command = [sys.executable, "-m", "latentsync", "serve", "--port", str(port), "--data-dir", str(data)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTSYNC_API_KEY": ""}
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(command + tiny.cli_args(), stdout=log, stderr=subprocess.STDOUT, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 180
        while not _answers(client):
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "latentsync serve did not come up"
            time.sleep(0.25)
        video, speech = upload(client, ASSETS / "demo1_video.mp4"), upload(client, media["speech"])
        first, second = (submit(client, video=video, audio=speech)["id"] for _ in range(2))
        deadline = time.monotonic() + 60
        while result(client, first)["status"] != "processing":
            assert time.monotonic() < deadline, "the first job did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)  # a stop mid-job: it must not wait for the job to end
        process.wait(timeout=30)
    finally:
        client.close()
        process.kill()
    assert not (data / "results" / f"{first}.mp4").exists()

    caplog.set_level(logging.INFO, logger="latentsync.server")
    again = LiveServer(ServerSettings(data_dir=data), pipeline)
    try:
        finished = [wait(again.client, job_id) for job_id in (first, second)]
        assert [job["status"] for job in finished] == ["completed", "completed"]
        assert "jobs cut off by the last stop: 1 run again, 0 failed" in caplog.text
        assert not any((data / "work").iterdir())
        (tmp_path / "out.mp4").write_bytes(again.client.get(finished[0]["outputs"][0]).content)
        assert probe(tmp_path / "out.mp4").frame_count == round(25 * SPEECH_SECONDS)
    finally:
        again.stop()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def test_the_faces_endpoint_boxes_the_faces_of_the_first_frame(server, media) -> None:
    client = server.client
    video = upload(client, ASSETS / "demo1_video.mp4")
    response = client.post("/api/v3/faces", json={"video": video})
    assert response.status_code == 200, response.text
    found = response.json()["data"]
    info = probe(ASSETS / "demo1_video.mp4")
    assert (found["width"], found["height"], found["frame"]) == (info.width, info.height, 0)
    assert len(found["faces"]) == 1  # one speaker
    x1, y1, x2, y2 = found["faces"][0]["box"]
    cx, cy = found["faces"][0]["center"]
    assert 0 <= x1 < cx < x2 <= info.width and 0 <= y1 < cy < y2 <= info.height
    assert 100 < x2 - x1 < info.width  # a face-sized box, not a speck
    assert found["image"].startswith("data:image/jpeg;base64,")
    assert_error(client.post("/api/v3/faces", json={"video": upload(client, media["text"])}), 400, "video")
    assert_error(client.post("/api/v3/faces", json={"video": "http://10.0.0.1/a.mp4"}), 400, "private")
