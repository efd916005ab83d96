"""The labeller in a real headless Chromium: keys, journal, kill -9 and resume, traversal.

Needs Debian's chromium and chromium-driver (`make test` installs them:
apt-get install chromium chromium-driver) and selenium from requirements.txt.
selenium-manager is never asked to download a browser or a driver.
"""

import http.client
import random
import shutil
import signal

import numpy as np
import pandas as pd
import pytest

from hybridvision.data_prep.journal import LabelJournal
from tests.data_prep.test_label import (
    make_images,
    request,
    start_labeller,
    stop_labeller,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

INSTALL_HINT = (
    "`make test` installs them (apt-get install chromium chromium-driver; "
    "selenium comes with pip install -r requirements.txt)"
)


@pytest.fixture(autouse=True)
def _seed_everything():
    # Overrides the suite's fixture: data_prep needs no Keras session to seed or clear.
    random.seed(1337)
    np.random.seed(1337)
    yield


def start_browser():
    """Headless Chromium via Debian's chromedriver; fails (never skips) when they are missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(f"Chromium or chromedriver not found on PATH: {INSTALL_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL_HINT}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    # An explicit driver path: selenium-manager would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(20)
    return driver


def shown_file(driver):
    return driver.find_element("id", "file").get_attribute("data-file")


def wait_for(driver, condition, what, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: condition(d), message=what)


def press(driver, key):
    driver.find_element("tag name", "body").send_keys(key)


def press_and_expect(driver, key, next_file):
    press(driver, key)
    wait_for(driver, lambda d: shown_file(d) == next_file, f"{next_file} after key {key!r}")


def labels(journal):
    with LabelJournal(journal, lock=False) as reader:
        return reader.labels(), reader.done()


def test_label_kill_resume_and_traversal_in_chromium(tmp_path):
    browser = start_browser()
    try:
        check_labeller(browser, tmp_path)
    finally:
        browser.quit()


def check_labeller(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    images = make_images(tmp_path / "images", 5)
    (tmp_path / "secret.txt").write_text("top secret")
    proposals = tmp_path / "proposals.csv"
    pd.DataFrame(
        {
            "file": [f"img{i}.png" for i in range(5)],
            "proposal": ["left_light", "right_light", "center_light", "left_light", "center_light"],
            "confidence": [0.7, 0.2, 0.9, 0.05, 0.5],
        }
    ).to_csv(proposals, index=False)
    journal = tmp_path / "journal"
    # Lowest confidence first: img3, img1, img4, img0, img2.
    process, port = start_labeller(
        images, journal, "--proposals", proposals, "--order", "confidence"
    )
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(browser, lambda d: shown_file(d) == "img3.png", "first image img3")
        assert browser.find_element("id", "proposal").text == "left_light"
        # The three views of the current image are loaded, the next images prefetched.
        wait_for(
            browser,
            lambda d: d.execute_script(
                "return ['original','hsv','mask'].every(i => document.getElementById(i).complete"
                " && document.getElementById(i).naturalWidth === 16)"
            ),
            "views of img3 loaded",
        )
        prefetched = browser.execute_script("return window.__prefetched")
        assert "/image/img1.png" in prefetched and "/view/mask/img4.png" in prefetched

        press_and_expect(browser, "1", "img1.png")
        # The new image is on screen, so its label must already be in the journal.
        assert labels(journal)[0] == {"img3.png": "left_light"}
        press_and_expect(browser, "r", "img4.png")
        press_and_expect(browser, "s", "img0.png")
        press_and_expect(browser, "u", "img4.png")
        assert "was skipped" in browser.find_element("id", "message").text
        press_and_expect(browser, Keys.ENTER, "img0.png")  # accepts img4's proposal
        assert labels(journal)[0] == {
            "img3.png": "left_light",
            "img1.png": "right_light",
            "img4.png": "center_light",
        }

        # Kill -9 mid-session: the page says so, nothing acknowledged is lost.
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        press(browser, "2")
        wait_for(
            browser,
            lambda d: "not reachable" in d.find_element("id", "error").text,
            "error banner after the kill",
        )
        assert shown_file(browser) == "img0.png"
        stop_labeller(process)

        process, port = start_labeller(
            images, journal, "--proposals", proposals, "--order", "confidence"
        )
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for(browser, lambda d: shown_file(d) == "img0.png", "resume at img0")
        progress = browser.find_element("id", "progress").text
        assert progress.startswith("3 / 5 done, 3 labelled")
        press_and_expect(browser, "3", "img2.png")
        press_and_expect(browser, "c", "")
        assert "All 5 images done" in browser.find_element("id", "done").text
        found, done = labels(journal)
        assert found == {
            "img3.png": "left_light",
            "img1.png": "right_light",
            "img4.png": "center_light",
            "img0.png": "right_light",
            "img2.png": "center_light",
        }
        assert done == set(found)

        # Files outside the image folder are refused, through the browser and raw requests.
        browser.get(f"http://127.0.0.1:{port}/image/%2e%2e/secret.txt")
        assert "top secret" not in browser.page_source
        for path in (
            "/image/../secret.txt",
            "/image/%2e%2e%2fsecret.txt",
            f"/image/{tmp_path / 'secret.txt'}",
        ):
            status, body = request(port, "GET", path)
            assert status in (403, 404) and b"top secret" not in body, path
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/image/../secret.txt")
        assert connection.getresponse().status == 403
        connection.close()
    finally:
        stop_labeller(process)
