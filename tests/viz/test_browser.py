"""The HTML viewer in a real browser: headless Debian Chromium driven by selenium.

Needs ``apt-get install chromium chromium-driver`` and ``pip install selenium``; skipped,
with that hint, when Chromium or its driver is absent.
"""

from __future__ import annotations

import pytest

from tests.viz.browser import chromium, console_errors
from tests.viz.conftest import big_tree, needs_chromium
from tim.viz import load_run, worker_timeline, write_html

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def driver():
    with chromium(width=1400, height=900) as drv:
        yield drv


def _open(driver, page):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return !!(window.timViewer && window.timViewer.ready)"))


def _row(driver, title: str):
    from selenium.webdriver.common.by import By

    rows = [r for r in driver.find_elements(By.CSS_SELECTOR, "#tree li > .row")
            if r.find_element(By.CSS_SELECTOR, ".lbl").text == title]
    assert len(rows) == 1, f"{len(rows)} rows titled {title!r}"
    return rows[0]


def _detail(driver) -> str:
    """The detail panel's textContent (the exact characters, U+2028 included)."""
    return driver.execute_script("return document.getElementById('detail').textContent")


def test_expand_and_click_shows_the_task(driver, tmp_path, parallel_path):
    from selenium.webdriver.common.by import By

    view = load_run(parallel_path)
    _open(driver, write_html(view, tmp_path / "run.html"))
    assert not driver.find_elements(By.XPATH, "//span[@class='lbl' and text()='compute B']")
    _row(driver, "plan").find_element(By.CSS_SELECTOR, ".tog").click()
    row = _row(driver, "compute B")
    row.click()
    assert "sel" in row.get_attribute("class")
    detail = _detail(driver)
    task = view.tree.task_at((0, 1))
    seg = next(s for s in worker_timeline(view.record).segments if s.path == (0, 1))
    assert driver.find_element(By.CSS_SELECTOR, "#detail h2").text == "compute B"
    for text in (task.thought, "tool call: calc", '"op": "mul"', task.conclusion,
                 f"{task.num_tokens}", f"{seg.start}–{seg.end} (worker {seg.lane + 1})",
                 "from the view of stream 0", "yes: the subtask list"):
        assert text in detail, text
    shot = tmp_path / "viewer.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    assert console_errors(driver) == []


def test_timeline_bar_and_search_select_tasks(driver, tmp_path, parallel_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(driver, write_html(parallel_path, tmp_path / "run.html"))
    bars = driver.find_elements(By.CSS_SELECTOR, "#timeline rect.seg")
    assert len(bars) == 7  # the root twice, (0,) twice, three more tasks
    add = next(b for b in bars if " · add · " in b.find_element(By.TAG_NAME, "title")
               .get_attribute("textContent"))
    add.click()
    assert driver.find_element(By.CSS_SELECTOR, "#detail h2").text == "add"
    assert "Add them." in _detail(driver) and "sel" in add.get_attribute("class")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline .ev-evict")) == 1
    search = driver.find_element(By.ID, "search")
    search.send_keys("17*20", Keys.ENTER)
    results = driver.find_elements(By.CSS_SELECTOR, "#results .row")
    assert [r.text for r in results] == ["0/0\ncompute A"] or \
        [r.text.replace("\n", " ") for r in results] == ["0/0 compute A"]
    results[0].click()
    assert driver.find_element(By.CSS_SELECTOR, "#detail h2").text == "compute A"
    assert _row(driver, "compute A").is_displayed()
    assert console_errors(driver) == []


def test_hostile_text_stays_text(driver, tmp_path, hostile_tree):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    _open(driver, write_html(hostile_tree, tmp_path / "hostile.html"))
    _row(driver, hostile_tree.reasoning[0].title).find_element(By.CSS_SELECTOR, ".tog").click()
    leaf = hostile_tree.reasoning[0].subtasks[0]
    _row(driver, leaf.title).click()
    detail = _detail(driver)
    for text in (leaf.thought, leaf.conclusion, leaf.error, leaf.tooluse.tool_result):
        assert text in detail, text
    untitled = hostile_tree.reasoning[1]
    _row(driver, untitled.thought).click()
    assert untitled.thought in _detail(driver)
    search = driver.find_element(By.ID, "search")
    search.send_keys("<script>")
    driver.execute_script("document.getElementById('search').dispatchEvent("
                          "new KeyboardEvent('keydown', {key: 'Enter'}))")
    assert driver.find_elements(By.CSS_SELECTOR, "#results .row")
    assert driver.execute_script("return window.__pwned") is None
    assert driver.find_elements(By.TAG_NAME, "img") == []
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 2
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it raises when there is none
    assert console_errors(driver) == []


def test_five_thousand_tasks_open_fast(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(driver, write_html(big_tree(), tmp_path / "big.html"))
    assert driver.execute_script("return window.timViewer.numTasks") == 5050
    assert driver.execute_script("return window.timViewer.initMs") < 1500  # about 35 ms here
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tree li > .row")) == 50  # collapsed
    driver.find_element(By.ID, "search").send_keys("leaf 49.9.8", Keys.ENTER)
    assert driver.find_element(By.CSS_SELECTOR, "#search + .tag").text == "1 match"
    driver.find_element(By.CSS_SELECTOR, "#results .row").click()
    assert driver.find_element(By.CSS_SELECTOR, "#detail h2").text == "leaf 49.9.8"
    assert _row(driver, "leaf 49.9.8").is_displayed()
    assert console_errors(driver) == []
