"""The scan report on hand-made records: rates, Wilson intervals, the grid, the shots curve, the HTML."""

from __future__ import annotations

from ctxops.evals.rundir import RunDir
from ctxops.scan.report import SCAN_HTML, SCAN_JSON, summarize_scan, write_scan_reports


def record(probe: str, length: int, depth: float | None, seed: int, success: bool, **extra) -> dict:
    return {
        "task": probe, "length": length, "depth": depth, "seed": seed, "probe": probe, "template": "t",
        "attack_success": success, "evidence": "verbatim" if success else None, "output": "out",
        "score": 0.0 if success else 1.0, "correct": not success, **extra,
    }  # fmt: skip


RECORDS = [
    *(record("injection", 1024, 0.0, i, i < 3) for i in range(4)),
    *(record("injection", 1024, 1.0, 10 + i, False) for i in range(4)),
    *(record("many_shot", 1024, None, i, i == 0, shots=8) for i in range(4)),
    *(record("many_shot", 4096, None, i, i < 3, shots=40) for i in range(4)),
]


def test_rates_intervals_and_grid() -> None:
    scan = summarize_scan(RECORDS)
    injection = scan["probes"]["injection"]
    assert injection["overall"]["successes"] == 3 and injection["overall"]["n"] == 8
    cells = {(g["depth"], g["length"]): g for g in injection["grid"]}
    top = cells[(0.0, 1024)]
    assert top["rate"] == 75.0 and 0 < top["ci_low"] < 75 < top["ci_high"] < 100
    assert cells[(1.0, 1024)]["rate"] == 0.0 and cells[(1.0, 1024)]["ci_high"] > 0
    assert [s["seed"] for s in injection["successes"]] == [0, 1, 2]
    shots = scan["probes"]["many_shot"]
    assert shots["shots"] == {"1024": 8.0, "4096": 40.0} and shots["by_length"]["4096"]["rate"] == 75.0


def test_reports_are_written(tmp_path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.write_json("run.json", {"target": {"kind": "local"}})
    for r in RECORDS:
        run_dir.append(r)
    write_scan_reports(run_dir)
    page = (tmp_path / SCAN_HTML).read_text()
    assert (tmp_path / SCAN_JSON).exists() and 'id="chart-injection"' in page and "<svg" in page
    assert "3 successes" in page
