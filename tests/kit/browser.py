"""Headless Chromium for the run browser's tests and scripts: Debian's `chromium` and its
matching `chromedriver`, driven by selenium, offline.

The flags keep Chromium from reaching any Google service (this machine's network is closed),
and the driver path is given, so selenium-manager downloads nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)  # fmt: skip


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A selenium Chrome driver on a new, empty profile, its console logged (`errors`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="moa-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def errors(driver: Any) -> list[str]:
    """The console's errors since the last call (and any uncaught exception)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def open_view(driver: Any, url: str, timeout: float = 20.0) -> None:
    """Opens `url` (a `file://` URL with its `#` route) and waits until the page is rendered."""
    driver.get(url)
    wait_ready(driver, timeout)


def go(driver: Any, route: str, timeout: float = 20.0) -> None:
    """Follows the page's own routing to `#route`, as a click on a link does."""
    driver.execute_script("document.body.dataset.ready = '0'; location.hash = arguments[0];", route)
    wait_ready(driver, timeout)


def wait_ready(driver: Any, timeout: float = 20.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "1"
    )
