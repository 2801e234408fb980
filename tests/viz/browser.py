"""Headless Debian Chromium through selenium and chromium-driver, with networking off."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver", "chromium-driver")


def find_chromium() -> tuple[str | None, str | None]:
    """(browser, driver) paths on PATH, or None for each that is missing."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    return browser, driver


@contextlib.contextmanager
def chromium(*, width: int = 1280, height: int = 800) -> Iterator:
    """A selenium driver for headless Chromium in a throw-away profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_chromium()
    if browser is None or driver_path is None:
        raise RuntimeError("chromium and chromium-driver are needed (apt-get install chromium "
                           "chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="tim-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-extensions",
                    "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors
        # an explicit driver path: selenium-manager would otherwise look on the network
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def console_errors(driver) -> list[str]:
    """Console messages of level SEVERE (script errors, CSP violations) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]
