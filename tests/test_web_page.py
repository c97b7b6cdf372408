"""The web page in a real headless Chromium (Debian's, driven by selenium): upload, wait, play the result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.live_server import LiveServer, short_speech

from latentsync.config.defaults import INFERENCE
from latentsync.server import ServerSettings
from latentsync.testing import ASSETS

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

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
    live = LiveServer(ServerSettings(data_dir=tmp_path_factory.mktemp("data")), pipeline)
    yield live
    live.stop()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1000,1400"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_the_page_uploads_waits_and_plays_the_result(server, browser, tmp_path) -> None:
    browser.get(server.url + "/")
    assert browser.title == "LatentSync"
    browser.find_element(By.ID, "video-file").send_keys(str(ASSETS / "demo1_video.mp4"))
    browser.find_element(By.ID, "audio-file").send_keys(str(short_speech(tmp_path)))
    steps = browser.find_element(By.ID, "steps")
    # The page shows the server's inference defaults before the user changes them.
    WebDriverWait(browser, 10).until(lambda _: steps.get_attribute("value") == str(INFERENCE.steps))
    assert browser.find_element(By.ID, "seed").get_attribute("value") == str(INFERENCE.seed)
    steps.clear()
    steps.send_keys("1")
    browser.find_element(By.ID, "submit").click()

    card = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, ".job"))
    statuses = set()

    def finished(_: object) -> bool:
        statuses.add(card.get_attribute("data-status"))
        return card.get_attribute("data-status") in ("completed", "failed")

    WebDriverWait(browser, 120, poll_frequency=0.1).until(finished)
    assert card.get_attribute("data-status") == "completed", card.find_element(By.CSS_SELECTOR, ".job-error").text
    assert statuses & {"created", "processing"}, "the page showed the job before it finished"
    assert card.find_element(By.CSS_SELECTOR, ".job-status").text.startswith("completed in")

    link = WebDriverWait(browser, 30).until(lambda d: card.find_element(By.CSS_SELECTOR, ".job-download:not([hidden])"))
    assert link.get_attribute("download").endswith(".mp4") and link.get_attribute("href").startswith("blob:")
    video = card.find_element(By.CSS_SELECTOR, "video.job-video")
    duration = WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("const v = arguments[0]; return v.readyState >= 1 && v.duration;", video)
    )
    assert duration == pytest.approx(0.4, abs=0.1)  # the browser decoded the lip-synced clip
    browser.save_screenshot(str(tmp_path / "page.png"))
