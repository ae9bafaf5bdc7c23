"""The SLO file: a good one loads; every malformed one is an error naming its line and field."""

from __future__ import annotations

import pytest

from ctxops.monitor.slo_config import SLOFileError, load_slo

GOOD = """\
period = "30d"

[[objective]]
name = "ttft-p95-8k"
kind = "latency"
metric = "ttft_s"
percentile = 95
threshold_s = 2.0
max_prompt_tokens = 8192

[[objective]]
name = "errors"
kind = "error_rate"
max_error_rate = 0.01

[[objective]]
name = "availability"
kind = "availability"
target = 0.999
"""


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "slo.toml"
    path.write_text(GOOD)
    config = load_slo(path)
    assert config.period_s == 30 * 86400
    latency, errors, availability = config.objectives
    assert latency.target == 0.95 and latency.threshold_s == 2.0 and latency.max_prompt_tokens == 8192
    assert errors.target == pytest.approx(0.99) and availability.error_budget == pytest.approx(0.001)


@pytest.mark.parametrize(
    "old, new, where",
    [
        (
            "threshold_s = 2.0",
            'threshold_s = "fast"',
            "line 8 (objective 1): field 'threshold_s' has the wrong type",
        ),
        ("percentile = 95", "percentile = 120", "line 7 (objective 1): field 'percentile'"),
        (
            "max_error_rate = 0.01",
            "max_error_rat = 0.01",
            "line 14 (objective 2): unknown field 'max_error_rat'",
        ),
        (
            'kind = "availability"',
            'kind = "uptime"',
            "line 18 (objective 3): field 'kind': kind must be one of",
        ),
        ('metric = "ttft_s"', 'metric = "tpot"', "line 6 (objective 1): field 'metric'"),
        ("target = 0.999", "", "(objective 3): field 'target' is required"),
        ('period = "30d"', 'period = "a month"', "line 1: field 'period'"),
        ("max_error_rate = 0.01", "max_error_rate = 0.01\nmax_error_rate = 0.02", "not valid TOML"),
    ],
)
def test_malformed_files_name_line_and_field(tmp_path, old, new, where):
    path = tmp_path / "slo.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(SLOFileError) as info:
        load_slo(path)
    assert where in str(info.value) and str(path) in str(info.value)


def test_no_objectives_and_duplicate_names(tmp_path):
    path = tmp_path / "slo.toml"
    path.write_text('period = "7d"\n')
    with pytest.raises(SLOFileError, match="defines none"):
        load_slo(path)
    path.write_text(GOOD.replace('name = "errors"', 'name = "availability"'))
    with pytest.raises(SLOFileError, match="unique"):
        load_slo(path)
