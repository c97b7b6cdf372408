"""The web page and the API docs in a real headless Chromium (Debian's, driven by selenium), at desktop and phone
widths: what a person needs to see is checked on the laid-out page (positions and visibility, not pixels)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.serverkit import SPEECH_SECONDS, LiveServer, short_speech

from latentsync.config.defaults import INFERENCE
from latentsync.server import ServerSettings
from latentsync.testing import ASSETS

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DESKTOP, PHONE = (1200, 1000), (390, 844)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import torch

    from latentsync.testing import write_tiny_models

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pipeline = write_tiny_models(tmp_path_factory.mktemp("tiny")).load_pipeline()
    live = LiveServer(ServerSettings(data_dir=tmp_path_factory.mktemp("data"), min_free_bytes=0), pipeline)
    yield live
    live.stop()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def rect(browser, element) -> dict:
    return browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height,"
        " viewport: window.innerHeight, page: document.documentElement.scrollWidth, wide: window.innerWidth};",
        element,
    )


def in_view(browser, element) -> bool:
    r = rect(browser, element)
    return r["height"] > 0 and r["top"] >= -1 and r["top"] < r["viewport"]


def open_page(browser, url: str, size: tuple[int, int]) -> None:
    browser.set_window_size(*size)
    browser.get(url + "/")
    browser.execute_script("localStorage.clear()")
    browser.get(url + "/")
    assert browser.title == "LatentSync"


def run_job(browser, speech: Path, pick_face: bool) -> object:
    """Choose the real clip (and, with `pick_face`, click its face on the first frame) and the speech, submit."""
    browser.find_element(By.ID, "video-file").send_keys(str(ASSETS / "demo1_video.mp4"))
    canvas = browser.find_element(By.ID, "face-canvas")
    WebDriverWait(browser, 60).until(lambda d: canvas.get_attribute("data-ready") == "1")
    assert canvas.get_attribute("data-faces") == "1" and canvas.is_displayed()
    assert "1 face found" in browser.find_element(By.ID, "face-hint").text
    if pick_face:
        face = browser.execute_script("return faces.faces[0].center.concat([faces.width, faces.height])")
        r = rect(browser, canvas)
        dx = face[0] / face[2] * r["width"] - r["width"] / 2
        dy = face[1] / face[3] * r["height"] - r["height"] / 2
        ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy)).click().perform()
        assert "the face you clicked" in browser.find_element(By.ID, "face-hint").text
    browser.find_element(By.ID, "audio-file").send_keys(str(speech))
    steps = browser.find_element(By.ID, "steps")
    # The page shows the server's inference defaults before the user changes them.
    WebDriverWait(browser, 10).until(lambda _: steps.get_attribute("value") == str(INFERENCE.steps))
    assert browser.find_element(By.ID, "seed").get_attribute("value") == str(INFERENCE.seed)
    steps.clear()
    steps.send_keys("1")
    browser.find_element(By.ID, "submit").click()
    problem = browser.find_element(By.ID, "form-error")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".job") or problem.text)
    assert not problem.text
    return browser.find_element(By.CSS_SELECTOR, ".job")


def finish(browser, card) -> None:
    WebDriverWait(browser, 120, poll_frequency=0.1).until(
        lambda _: card.get_attribute("data-status") in ("completed", "failed")
    )
    assert card.get_attribute("data-status") == "completed", card.find_element(By.CSS_SELECTOR, ".job-error").text
    assert card.find_element(By.CSS_SELECTOR, ".job-status").text.startswith("completed in")


def assert_before_and_after_side_by_side(browser, card) -> None:
    before = card.find_element(By.CSS_SELECTOR, ".job-before video")
    after = WebDriverWait(browser, 30).until(
        lambda _: card.find_element(By.CSS_SELECTOR, ".job-after:not([hidden]) video")
    )
    duration = WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("const v = arguments[0]; return v.readyState >= 1 && v.duration;", after)
    )
    assert duration == pytest.approx(SPEECH_SECONDS, abs=0.1)  # the browser decoded the lip-synced clip
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].readyState >= 1", before))
    b, a = rect(browser, before), rect(browser, after)
    assert abs(b["top"] - a["top"]) < 2 and b["right"] <= a["left"] and min(b["width"], a["width"]) > 100
    assert a["page"] <= a["wide"], "the page scrolls sideways"
    link = card.find_element(By.CSS_SELECTOR, ".job-download")
    assert link.is_displayed() and link.get_attribute("download").endswith(".mp4")
    assert "/output.mp4?expires=" in link.get_attribute("href")  # the signed URL: plays and seeks without a key


def test_at_desktop_width_a_job_runs_with_the_clicked_face_and_plays_beside_its_input(server, browser, tmp_path):
    open_page(browser, server.url, DESKTOP)
    icon = browser.execute_script(
        "return fetch(document.querySelector('link[rel=icon]').href)"
        ".then(r => r.status + ' ' + r.headers.get('content-type'))"
    )
    assert icon == "200 image/svg+xml"
    card = run_job(browser, short_speech(tmp_path), pick_face=True)
    inputs = card.find_element(By.CSS_SELECTOR, ".job-inputs").text
    for words in ("demo1_video.mp4", "speech.wav", "cut_off", "1 steps", "guidance 1.5", "seed 1247", "face at"):
        assert words in inputs
    finish(browser, card)
    assert_before_and_after_side_by_side(browser, card)
    browser.save_screenshot(str(tmp_path / "desktop.png"))


def test_on_a_phone_the_error_and_the_new_card_scroll_into_view(server, browser, tmp_path):
    open_page(browser, server.url, PHONE)
    browser.find_element(By.ID, "submit").click()  # nothing chosen
    problem = browser.find_element(By.ID, "form-error")
    WebDriverWait(browser, 10).until(lambda _: "choose a video" in problem.text)
    WebDriverWait(browser, 10).until(lambda d: in_view(d, problem))
    browser.execute_script("window.scrollTo(0, 0)")

    card = run_job(browser, short_speech(tmp_path), pick_face=False)
    WebDriverWait(browser, 10).until(lambda d: in_view(d, card))
    assert "largest face" in card.find_element(By.CSS_SELECTOR, ".job-inputs").text
    finish(browser, card)
    assert_before_and_after_side_by_side(browser, card)
    browser.save_screenshot(str(tmp_path / "phone.png"))


def test_the_api_docs_render_and_list_the_endpoints(server, browser):
    browser.set_window_size(*DESKTOP)
    browser.get(server.url + "/docs")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {
        e.get_attribute("data-path") or e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    for path in (
        "/api/v3/sync/lipsync-3",
        "/api/v3/predictions/{job_id}/result",
        "/api/v3/predictions/{job_id}",
        "/api/v3/media/upload/binary",
        "/api/v3/faces",
    ):
        assert any(path == p.replace("\u200b", "") for p in paths), paths
    assert "Unable to render" not in browser.find_element(By.TAG_NAME, "body").text
