"""report.html rendered in real headless Chromium (the Debian package; playwright never downloads a browser)."""

from __future__ import annotations

import asyncio
import json

import pytest

from browser import chromium_page
from ctxops.evals.config import EvalConfig
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from evals.conftest import EchoTarget


@pytest.fixture(scope="module")
def report(tmp_path_factory, counter):
    run_dir = RunDir(tmp_path_factory.mktemp("run"))
    config = EvalConfig(
        tasks=("niah_single_1", "niah_single_2", "fwe"), lengths=(1024, 2048, 3072), samples=6, depths=3
    )
    target = EchoTarget(counter, correct=lambda s: s.spec.length < 3000 or s.spec.seed % 2 == 0)
    asyncio.run(run_eval(config, target, run_dir, show_progress=False))
    summary = write_reports(run_dir)
    return run_dir, summary


def test_summary_json(report):
    run_dir, summary = report
    data = json.loads(run_dir.file("summary.json").read_text())
    assert data["overall"]["1024"]["score"] == 100.0 and data["overall"]["3072"]["score"] == 50.0
    assert data["effective_length"]["point_estimate"] == 2048
    assert (
        data["effective_length"]["lower_bound"] is None
    )  # 18 of 18 right: the Wilson lower bound is 82.4 < 85.6
    assert {g["depth"] for g in data["depth_grid"]} == {0.0, 0.5, 1.0}
    html = run_dir.file("report.html").read_text()
    for external in ('src="http', "src='http", 'href="http', "url(http", "<link", "<script", "@import"):
        assert external not in html


def test_report_renders_in_chromium(report):
    run_dir, _ = report
    url = run_dir.file("report.html").resolve().as_uri()
    with chromium_page("file:") as seen:
        page = seen.page
        page.goto(url)
        assert page.title().startswith("ctxops eval")
        for chart in ("#chart-score", "#chart-heatmap", "#chart-latency"):
            box = page.locator(f"{chart} svg").bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, chart
        assert page.locator("#chart-heatmap svg text").count() > 9  # cell labels and axis ticks drawn
        rows = page.locator("#task-table tr")
        assert rows.count() == 1 + 3 + 1  # header, three tasks, all tasks
        assert "Effective context length" in page.inner_text("body")
        assert page.locator("#provenance").inner_text().count("ctxops_version") == 1
        page.screenshot(path=str(run_dir.file("report.png")), full_page=True)
    assert not seen.external, f"the report fetched {seen.external}"
    assert not seen.errors, seen.errors
