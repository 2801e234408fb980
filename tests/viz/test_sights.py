"""The viewer shows, per worker of a shared-siblings run, which siblings it saw (issue 15)."""

from __future__ import annotations

import pytest

from tests.engine.test_oracles import load, run_tree
from tests.viz.browser import console_errors
from tests.viz.conftest import needs_chromium
from tim.result import Result
from tim.tree import Task, TaskTree
from tim.viz import write_html
from tim.viz.viewer import viewer_data

TREE = TaskTree([Task("one two three", "1", title="first"),
                 Task("four five", "2", title="second"),
                 Task("six", "3", title="third")], answer="6")


@pytest.fixture(scope="module")
def shared_run():
    record = run_tree(load("qwen3"), TREE, fmt="parallel", siblings="shared")
    return Result.of(record, question="q", model="tiny")


def test_viewer_data_holds_each_workers_sights(shared_run):
    data = viewer_data(shared_run)
    index = {t["path"]: i for i, t in enumerate(data["tasks"])}
    record = shared_run.record
    for path in ((0,), (1,), (2,)):
        mine = {j: points for j, points in data["sights"][str(index[str(path[0])])]}
        expected = {}
        for sight in record.sights:
            if sight.stream == path:
                for sibling, n in sight.seen:
                    expected.setdefault(index[str(sibling[0])], []).append([sight.step, n])
        assert mine == expected and len(mine) == 2
    assert data["meta"]["siblings"] == "shared"
    isolated = run_tree(load("qwen3"), TREE, fmt="parallel")
    assert viewer_data(Result.of(isolated)).get("sights") == {}


@needs_chromium
def test_the_detail_panel_draws_the_sights(shared_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.viz.browser import chromium

    page = write_html(shared_run, tmp_path / "shared.html")
    with chromium(width=1400, height=900) as driver:
        driver.get(page.as_uri())
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script("return !!(window.timViewer && window.timViewer.ready)"))
        row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#tree li > .row")
                   if r.find_element(By.CSS_SELECTOR, ".lbl").text == "second")
        row.click()
        detail = driver.execute_script("return document.getElementById('detail').textContent")
        assert "siblings it saw" in detail
        assert "task 0: steps" in detail and "task 2: steps" in detail
        assert len(driver.find_elements(By.CSS_SELECTOR, "#detail svg.sights polyline")) == 2
        assert console_errors(driver) == []
