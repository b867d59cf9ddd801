"""Headless Debian Chromium driven by Selenium through Debian's chromedriver.

Selenium, not Playwright: chromium and chromium-driver come from the same
Debian source package, so the driver always matches the browser, and WebDriver
is a standard; Playwright drives a pinned Chromium build over CDP and is only
best-effort against another one. `.ci/run` installs both packages.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

# As root in a container: no sandbox, no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2200",
)
INSTALL_HINT = (
    "install Debian's browser and driver: `apt-get install -y chromium "
    "chromium-driver` (.ci/run does it)"
)


@contextmanager
def chromium(log: Path) -> Iterator[webdriver.Chrome]:
    """Start a headless Chromium with a fresh profile; fail clearly if it cannot."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail(f"chromium or chromedriver is not on PATH: {INSTALL_HINT}.")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        session = webdriver.Chrome(
            options=options, service=Service(driver, log_output=str(log))
        )
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(
            f"Chromium did not start: {exc.msg} (chromedriver log: {log}); "
            f"{INSTALL_HINT}."
        )
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)
