"""The server in operation: one server per data dir, claims with heartbeats, the fetch pool, several GPU workers,
retention, signed result URLs, submit-time checks and webhooks.

A fake pipeline stands in for the model (the GPU work is not what these tests are about), so each test takes
about a second; every wait has a deadline.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers.serverkit import FakePipeline, LiveServer, assert_error, result, short_speech, submit, upload, wait

from latentsync.server import DataDirBusy, ServerSettings, create_app
from latentsync.server.jobs import JobStore
from latentsync.server.retention import sweep
from latentsync.server.settings import DAY
from latentsync.server.storage import Storage
from latentsync.server.worker import owner_gone

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)


def settings(tmp_path: Path, **changes: object) -> ServerSettings:
    base = {
        "data_dir": tmp_path / "data",
        "allow_networks": LOOPBACK_ONLY,
        "heartbeat_seconds": 0.1,
        "min_free_bytes": 0,
        "webhook_backoff": 0.05,
        "fetch_workers": 2,
    }
    return ServerSettings(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def speech(tmp_path) -> Path:
    return short_speech(tmp_path)


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder; /stall sends headers and then nothing for 3 s; /trickle sends a file over ~0.8 s;
    POST /hook records the delivery and answers 500 to the first one."""

    hooks: list[dict]

    def do_GET(self) -> None:
        if self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(3)
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            for _ in range(8):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            super().do_GET()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.hooks.append({"body": body, "headers": dict(self.headers)})
        self.send_response(500 if len(self.hooks) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path, speech):
    """A loopback web server: the test speech, slow URLs and a webhook receiver."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "speech.wav").write_bytes(speech.read_bytes())
    hooks: list[dict] = []
    handler = type("H", (Handler,), {"hooks": hooks})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    httpd.hooks = hooks  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()


@pytest.fixture
def live(request, tmp_path):
    """LiveServer factory; every server started is stopped at the end."""
    started: list[LiveServer] = []

    def start(pipeline=None, api_key=None, devices=(), **changes) -> LiveServer:
        server = LiveServer(
            settings(tmp_path, api_key=api_key, **changes), pipeline or FakePipeline(), api_key, devices
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def until(condition, timeout: float = 10, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.02)


# --- one server per data dir, and claims that survive only their owner ------------------------------------------------
def test_a_second_server_on_the_data_dir_is_refused_naming_the_holder(live, tmp_path) -> None:
    first = live()
    with pytest.raises(DataDirBusy, match=r"in use by another server \(pid \d+ on .*started") as refused:
        create_app(settings(tmp_path), FakePipeline())
    assert "--data-dir" in str(refused.value)
    first.stop()
    create_app(settings(tmp_path), FakePipeline())  # free again once the first has stopped (its lock went with it)


def test_a_live_workers_claim_is_never_taken_back_and_a_dead_ones_is(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    a, b = (store.create("m", {"video": "v", "audio": "a"}) for _ in range(2))
    for job in (a, b):
        store.claim_fetch("f")
        store.fetched(job.id, "f")
    store.claim_next("host:1:live")
    store.claim_next("host:2:dead")
    time.sleep(0.05)
    store.beat(["host:1:live"])  # only the live one renews its claim
    assert store.recover(time.time() - 0.03) == (1, [])
    assert store.get(a.id).status == "processing" and store.get(b.id).status == "created"
    assert not store.complete(b.id, "host:2:dead", 5)  # the presumed dead worker wakes up: its outcome is dropped
    assert store.complete(a.id, "host:1:live", 5) and store.get(a.id).status == "completed"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the crash is the point
def test_a_crashed_worker_threads_job_runs_again_and_completes(live, speech) -> None:
    fake = FakePipeline(crash_first=True)
    server = live(fake)
    clip = upload(server.client, speech)
    job = wait(server.client, submit(server.client, video=clip, audio=clip)["id"], timeout=20)
    assert job["status"] == "completed" and len(fake.calls) == 2


def test_a_job_killed_twice_leaves_no_work_folder(tmp_path, live) -> None:
    storage = Storage(tmp_path / "data")
    store = JobStore(storage.database)
    job = store.create("bytedance/latentsync", {"video": "v", "audio": "a"})
    store.claim_fetch("f")
    store.fetched(job.id, "f")
    dead = f"{socket.gethostname()}:999999999:worker0"  # a process of this host that no longer exists
    store.claim_next(dead)
    assert store.recover(time.time() - 60, owner_gone) == (1, [])  # killed once: it runs again
    store.claim_fetch("f")
    store.fetched(job.id, "f")
    store.claim_next(dead)  # and is killed again: the next server's start fails it
    storage.work_dir(job.id).mkdir(parents=True)
    (storage.work_dir(job.id) / "video").write_bytes(b"fetched input")
    store.close()
    server = live()
    until(lambda: result(server.client, job.id)["status"] == "failed", what="the job failed")
    assert "2 times" in result(server.client, job.id)["error"]
    assert not any(storage.work.iterdir())


# --- the fetch pool and the GPU workers -------------------------------------------------------------------------------
def test_slow_input_urls_never_hold_the_gpu_and_a_jobs_downloads_share_one_deadline(live, web, speech) -> None:
    server = live(download_timeout=1.0, fetch_workers=3)
    clip = upload(server.client, speech)
    stalled = submit(server.client, video=f"{web.url}/stall", audio=clip)
    slow_pair = submit(server.client, video=f"{web.url}/trickle", audio=f"{web.url}/trickle")  # 0.8 s each
    quick = submit(server.client, video=clip, audio=clip)
    started = time.monotonic()
    assert wait(server.client, quick["id"], timeout=10)["status"] == "completed"
    assert time.monotonic() - started < 0.9, "the job with uploaded inputs waited for the slow downloads"
    assert result(server.client, stalled["id"])["status"] == "created"
    for job in (stalled, slow_pair):
        failed = wait(server.client, job["id"], timeout=10)
        assert failed["status"] == "failed" and "1 s download limit" in failed["error"]


def test_one_gpu_worker_per_device_in_submission_order(live, speech) -> None:
    fakes = [FakePipeline("cuda:0", seconds=0.3), FakePipeline("cuda:1", seconds=0.3)]
    server = live(fakes, devices=["cuda:0", "cuda:1"])
    clip = upload(server.client, speech)
    ids = [submit(server.client, video=clip, audio=clip, seed=i)["id"] for i in range(6)]
    for job_id in ids:
        assert wait(server.client, job_id, timeout=20)["status"] == "completed"
    calls = sorted((call["started"], call["seed"]) for fake in fakes for call in fake.calls)
    assert [seed for _, seed in calls] == list(range(6))  # started in the order submitted
    assert all(len(fake.calls) >= 2 for fake in fakes)  # both devices worked
    overlap = min(c["started"] for c in fakes[1].calls) - min(c["started"] for c in fakes[0].calls)
    assert abs(overlap) < 0.3, "the two workers ran side by side"


# --- retention --------------------------------------------------------------------------------------------------------
def test_uploads_go_when_their_jobs_end_and_jobs_can_be_deleted(live, speech) -> None:
    server = live(FakePipeline(seconds=0.3))
    client = server.client
    shared, other = upload(client, speech), upload(client, speech)
    first = submit(client, video=shared, audio=other)
    second = submit(client, video=shared, audio=shared)  # uses `shared` too
    wait(client, first["id"])
    gone = server.settings.data_dir / "uploads" / other.rsplit("/", 1)[1]
    until(lambda: not gone.exists(), what="the first job's own upload is deleted")
    assert client.get(other).status_code == 404
    assert client.get(shared).status_code == 200  # still needed by the second
    wait(client, second["id"])
    until(lambda: client.get(shared).status_code == 404, what="the shared upload is deleted after the second job")

    done = result(client, first["id"])
    assert client.get(done["outputs"][0]).status_code == 200
    deleted = client.delete(f"/api/v3/predictions/{first['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"] == {"id": first["id"], "deleted": True}
    assert_error(client.get(f"/api/v3/predictions/{first['id']}/result"), 404, "no prediction")
    assert client.get(done["outputs"][0]).status_code == 404
    assert not (server.settings.data_dir / "results" / f"{first['id']}.mp4").exists()
    assert_error(client.delete(f"/api/v3/predictions/{first['id']}"), 404)

    running = submit(client, video=(clip := upload(client, speech)), audio=clip)
    until(lambda: result(client, running["id"])["status"] == "processing", what="the job started")
    assert_error(client.delete(f"/api/v3/predictions/{running['id']}"), 409, "running")
    wait(client, running["id"])


def test_retention_deletes_what_is_older_than_keep_days(tmp_path) -> None:
    storage = Storage(tmp_path / "data")
    store = JobStore(storage.database)
    old, recent, waiting = (store.create("m", {"video": "v", "audio": "a"}) for _ in range(3))
    for job in (old, recent):
        store.claim_fetch("f")
        store.fetched(job.id, "f")
        store.claim_next("w")
        store.complete(job.id, "w", 1)
        storage.result(job.id).write_bytes(b"video")
    store._db.execute("UPDATE jobs SET ended_at = ? WHERE id = ?", (time.time() - 8 * DAY, old.id))
    stale_upload, fresh_upload = storage.new_upload("a.wav"), storage.new_upload("b.wav")
    for path in (stale_upload, fresh_upload):
        path.write_bytes(b"sound")
    eight_days_ago = time.time() - 8 * DAY
    os.utime(stale_upload, (eight_days_ago, eight_days_ago))
    assert sweep(store, storage, keep_days=7) == (1, 1)
    assert not storage.result(old.id).exists() and storage.result(recent.id).exists()
    assert not stale_upload.exists() and fresh_upload.exists()
    assert {job.id for job in store.ended_before(time.time() + 1)} == {recent.id}
    assert store.get(waiting.id).status == "created"


def test_under_the_disk_floor_new_jobs_and_uploads_are_refused_clearly(live, speech) -> None:
    server = live(min_free_bytes=1 << 60)
    client = server.client
    response = client.post("/api/v3/media/upload/binary", files={"file": ("a.wav", speech.read_bytes())})
    assert_error(response, 507, "low on disk space", "--keep-days")
    body = {"video": "https://example.com/a.mp4", "audio": "https://example.com/a.wav"}
    assert_error(client.post("/api/v3/bytedance/latentsync", json=body), 507, "GB free")


# --- result URLs ------------------------------------------------------------------------------------------------------
def test_signed_result_urls_need_no_key_and_answer_head_and_ranges(live, speech) -> None:
    server = live(api_key="s3cret")
    clip = upload(server.client, speech)
    job = wait(server.client, submit(server.client, video=clip, audio=clip)["id"])
    url = job["outputs"][0]
    expected = (server.settings.data_dir / "results" / f"{job['id']}.mp4").read_bytes()
    anonymous = httpx.Client(timeout=10)
    whole = anonymous.get(url)
    assert whole.status_code == 200 and whole.content == expected and whole.headers["content-type"] == "video/mp4"
    head = anonymous.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(expected) and not head.content
    part = anonymous.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == expected[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(expected)}"

    bare = url.split("?")[0]
    assert_error(anonymous.get(bare), 401, "Authorization: Bearer")
    assert server.client.get(bare).status_code == 200  # the key still works
    assert_error(anonymous.get(url[:-4] + "0000"), 401, "expired or is not signed")
    clip = upload(server.client, speech)  # the first job's upload went with its end
    other = submit(server.client, video=clip, audio=clip)["id"]  # a signature is for its own job only
    assert anonymous.get(url.replace(job["id"], other)).status_code == 401
    expires = int(url.split("expires=")[1].split("&")[0])
    assert 6 * DAY < expires - time.time() <= 7 * DAY
    past = url.replace(f"expires={expires}", "expires=1000")
    assert_error(anonymous.get(past), 401, "expired")
    wait(server.client, other)


# --- what is refused at submit, and what errors never say -------------------------------------------------------------
def test_types_are_strict_credentials_never_echoed_and_echoed_ids_short(live, speech) -> None:
    server = live()
    client = server.client
    clip = upload(client, speech)
    for field, value in (("steps", True), ("steps", "3"), ("seed", 1.5), ("guidance_scale", "2"), ("sync_mode", 1)):
        assert_error(
            client.post("/api/v3/sync/lipsync-3", json={"video": clip, "audio": clip, field: value}), 400, field
        )
    assert submit(client, video=clip, audio=clip, guidance_scale=2)["status"] == "created"  # 2 is a fine float

    secret_urls = [
        "http://alice:hunter2@10.0.0.7/face.mp4?token=hunter3",
        "ftp://alice:hunter2@example.com/x?k=hunter3",
    ]
    for url in secret_urls:
        response = client.post("/api/v3/bytedance/latentsync", json={"video": url, "audio": clip})
        assert_error(response, 400, "video")
        assert "hunter" not in response.text and "alice" not in response.text

    long_id = "a" * 5000
    response = client.get(f"/api/v3/predictions/{long_id}/result")
    assert_error(response, 404, "no prediction")
    assert len(response.json()["message"]) < 120


def test_a_failed_download_names_the_url_without_its_credentials(live, web, speech) -> None:
    server = live()
    url = f"{web.url.replace('//', '//bob:pa55word@')}/missing.mp4?sig=pa55word"
    job = wait(server.client, submit(server.client, video=url, audio=upload(server.client, speech))["id"])
    assert job["status"] == "failed" and "HTTP 404" in job["error"] and f"{web.url}/missing.mp4?…" in job["error"]
    assert "pa55word" not in job["error"] and "bob" not in job["error"]


# --- webhooks ---------------------------------------------------------------------------------------------------------
def test_a_webhook_gets_the_signed_result_envelope_retried_after_a_failure(live, web, speech) -> None:
    server = live(api_key="k3y")
    clip = upload(server.client, speech)
    job = submit(server.client, video=clip, audio=clip, webhookUrl=f"{web.url}/hook")
    done = wait(server.client, job["id"])
    until(lambda: len(web.hooks) == 2, what="two webhook deliveries (the first answered 500)")
    delivery = web.hooks[1]
    envelope = json.loads(delivery["body"])
    assert envelope["code"] == 200 and envelope["data"]["id"] == job["id"]
    assert (
        envelope["data"]["status"] == "completed"
        and envelope["data"]["outputs"][0].split("?")[0] == (done["outputs"][0].split("?")[0])
    )
    stamp, mac = (part.split("=", 1)[1] for part in delivery["headers"]["X-LatentSync-Signature"].split(","))
    expected = hmac.new(b"k3y", f"{stamp}.".encode() + delivery["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)

    clip = upload(server.client, speech)
    private = {"video": clip, "audio": clip, "webhook_url": "http://192.168.1.5/hook"}
    assert_error(server.client.post("/api/v3/bytedance/latentsync", json=private), 400, "webhook_url", "private")


def test_the_chosen_face_reaches_the_pipeline(live, speech) -> None:
    fake = FakePipeline()
    server = live(fake)
    clip = upload(server.client, speech)
    assert wait(server.client, submit(server.client, video=clip, audio=clip, face_at=[640.5, 360])["id"])["status"] == (
        "completed"
    )
    assert fake.calls[0]["face_at"] == (640.5, 360.0) and fake.calls[0]["face_index"] is None
    for wrong in ([1.0], [1, 2, 3], "640,360"):
        assert_error(
            server.client.post("/api/v3/bytedance/latentsync", json={"video": clip, "audio": clip, "face_at": wrong}),
            400,
            "face_at",
        )


def test_active_speaker_passes_the_speaker_chooser_and_refuses_a_fixed_face(live, speech, tmp_path) -> None:
    from latentsync.eval.speaker import choose_speaker
    from latentsync.hub import checkpoint_paths

    root = tmp_path / "checkpoints"
    weights = checkpoint_paths("1.6", root).auxiliary / "syncnet_v2.model"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"stand-in")  # only its presence matters: it picks the SyncNet scorer
    fake = FakePipeline()
    server = live(fake, checkpoints=root, model_version="1.6")
    clip = upload(server.client, speech)
    plain = submit(server.client, video=clip, audio=clip)["id"]
    assert wait(server.client, plain)["status"] == "completed"
    clip = upload(server.client, speech)  # a finished job's uploads are gone
    chosen = submit(server.client, video=clip, audio=clip, active_speaker=True)["id"]
    assert wait(server.client, chosen)["status"] == "completed"
    assert fake.calls[0]["face_chooser"] is None
    chooser = fake.calls[1]["face_chooser"]
    assert chooser.func is choose_speaker and chooser.keywords == {"syncnet_weights": weights}
    assert fake.calls[1]["face_index"] is None and fake.calls[1]["face_at"] is None
    for fixed in ({"face_index": 0}, {"face_at": [10.0, 20.0]}):
        body = {"video": clip, "audio": clip, "active_speaker": True, **fixed}
        assert_error(server.client.post("/api/v3/bytedance/latentsync", json=body), 400, "active_speaker")
    assert len(fake.calls) == 2


# --- the command ------------------------------------------------------------------------------------------------------
def test_serve_refuses_a_held_data_dir_before_loading_models_and_loads_one_pipeline_per_device(
    tmp_path, monkeypatch, capsys
) -> None:
    from latentsync import cli
    from latentsync.cli import serve as serve_cli
    from latentsync.server.lock import DataDirLock

    loaded, served = [], {}
    monkeypatch.setattr(
        serve_cli, "load_pipeline", lambda args: loaded.append(args.device) or FakePipeline(args.device)
    )
    monkeypatch.setattr(
        "latentsync.server.serve", lambda settings, pipelines, **kw: served.update(kw, n=len(pipelines))
    )
    data = tmp_path / "data"
    data.mkdir()
    held = DataDirLock(data)
    held.acquire("127.0.0.1:8000")
    try:
        assert cli.main(["serve", "--data-dir", str(data)]) == 2
        assert "in use by another server" in capsys.readouterr().err and loaded == []
    finally:
        held.release()
    args = ["serve", "--data-dir", str(data), "--devices", "cuda:0,cuda:1", "--keep-days", "2", "--port", "9"]
    assert cli.main(args) == 0
    assert loaded == ["cuda:0", "cuda:1"] and served == {"host": "127.0.0.1", "port": 9, "devices": loaded, "n": 2}
