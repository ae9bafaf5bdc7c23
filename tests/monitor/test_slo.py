"""SLO burn rates on a real store (SQLite and Postgres): a fast burn pages only while both windows burn, a slow
burn opens a ticket, and the CLI prints the report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.monitor.slo import evaluate_slos
from ctxops.monitor.slo_config import Objective, SLOConfig
from ctxops.store import open_store
from ctxops.store.requests import insert_requests

NOW = 1_800_000_000.0
ERRORS = Objective(name="errors", kind="error_rate", target=0.99)
TTFT = Objective(
    name="ttft", kind="latency", target=0.95, metric="ttft_s", threshold_s=2.0, max_prompt_tokens=8192
)
CONFIG = SLOConfig(30 * 86400, (ERRORS, TTFT))


def _rows(start_ago: float, end_ago: float, every_s: float, bad_every: int, tag: str) -> list[dict]:
    """One request every ``every_s`` seconds; every ``bad_every``-th fails (500) and is slow (3 s TTFT)."""
    out, t, i = [], NOW - start_ago, 0
    while t < NOW - end_ago:
        bad = bad_every and i % bad_every == 0
        out.append({"request_id": f"{tag}{i}", "created_at": t, "endpoint": "chat.completions", "model": "m",
                    "status": 500 if bad else 200, "prompt_tokens": 100, "ttft_s": 3.0 if bad else 0.2})  # fmt: skip
        t, i = t + every_s, i + 1
    return out


def _statuses(db_url, *batches):
    store = open_store(db_url)
    for batch in batches:
        insert_requests(store, batch)
    statuses = {s.name: s for s in evaluate_slos(store, CONFIG, NOW)}
    store.close()
    return statuses


def test_a_fast_burn_pages_and_the_budget_shows_it(db_url):
    calm = _rows(3 * 86400, 3600, 60, 0, "calm")  # three days without errors
    burning = _rows(3600, 0, 6, 5, "burn")  # the last hour: 20% errors = 20x the 1% budget
    errors = _statuses(db_url, calm, burning)["errors"]
    assert errors.burn_rates["1h"] == pytest.approx(20, rel=0.05) and errors.burn_rates["5m"] > 14.4
    page = errors.alerts[0]
    assert (page.long_window, page.short_window, page.burn_rate, page.firing) == ("1h", "5m", 14.4, True)
    assert errors.status == "page" and errors.valid == len(calm) + len(burning)
    assert errors.attainment == pytest.approx(1 - 120 / errors.valid)
    assert errors.error_budget_left == pytest.approx(1 - (120 / errors.valid) / 0.01)


def test_a_burst_that_stopped_does_not_page(tmp_path):
    calm = _rows(3 * 86400, 3600, 60, 0, "calm")
    burst = _rows(3600, 900, 6, 3, "burst")  # bad until 15 minutes ago, clean since
    clean = _rows(900, 0, 6, 0, "clean")
    errors = _statuses(str(tmp_path / "s.db"), calm, burst, clean)["errors"]
    assert errors.burn_rates["1h"] > 14.4 and errors.burn_rates["5m"] == 0
    assert not errors.alerts[0].firing  # the short window resets the page


def test_a_slow_burn_opens_a_ticket_and_latency_counts_only_short_prompts(tmp_path):
    slow = _rows(3 * 86400, 0, 60, 50, "slow")  # 2% bad for three days: 2x the budget rate
    long_prompts = [dict(r, request_id=f"long{i}", prompt_tokens=20_000, ttft_s=9.0)
                    for i, r in enumerate(_rows(3600, 0, 60, 0, "x"))]  # fmt: skip
    statuses = _statuses(str(tmp_path / "s.db"), slow, long_prompts)
    errors, ttft = statuses["errors"], statuses["ttft"]
    assert [a.severity for a in errors.alerts if a.firing] == ["ticket"] and errors.status == "ticket"
    assert ttft.valid == len(slow) - sum(r["status"] == 500 for r in slow)  # failed and long prompts excluded
    assert ttft.bad == 0 and ttft.status == "ok"


def test_no_traffic_is_no_data(tmp_path):
    errors = _statuses(str(tmp_path / "s.db"))["errors"]
    assert (
        errors.status == "no data" and errors.attainment is None and not any(a.firing for a in errors.alerts)
    )


def test_cli_json_and_exit_code(tmp_path):
    db = str(tmp_path / "s.db")
    _statuses(db, _rows(3600, 0, 6, 5, "burn"))
    slo = tmp_path / "slo.toml"
    slo.write_text(
        'period = "30d"\n[[objective]]\nname = "errors"\nkind = "error_rate"\nmax_error_rate = 0.01\n'
    )
    args = ["monitor", "slo", "--db", db, "--slo", str(slo), "--at", "2027-01-15T08:00:00", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["alerting"] is True and report["objectives"][0]["status"] == "page"
    assert CliRunner().invoke(cli, [*args, "--fail-on-alert"]).exit_code == 1
    table = CliRunner().invoke(cli, args[:-1])
    assert "PAGE: errors burns 20x over 1h" in table.output
    slo.write_text("[[objective]]\nname = 3\n")
    bad = CliRunner().invoke(cli, args)
    assert bad.exit_code == 2 and "line 2 (objective 1): field 'name' has the wrong type" in bad.output
