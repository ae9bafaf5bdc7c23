"""``ctxops scan`` end to end on a real (tiny) model: run, resume, reports, compare, and the same numbers over HTTP."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.cli.scan import parse_probes

ENGINE = ["--kv-cache-memory", "8MiB", "--max-model-len", "1024"]


def scan(model_args: list[str], out, *extra: str) -> CliRunner:
    args = ["scan", *model_args, "--probes", "poison,many-shot", "--lengths", "512,768", "--samples", "2",
            "--depths", "2", "--out", str(out), "--no-progress", *extra]  # fmt: skip
    return CliRunner().invoke(cli, args)


def records(out) -> dict:
    return {(r["task"], r["length"], r["seed"]): r for r in map(json.loads, (out / "samples.jsonl").open())}


def test_parse_probes() -> None:
    assert parse_probes("poison,many-shot,poison") == ("poison", "many_shot")
    assert len(parse_probes("all")) == 5
    with pytest.raises(ValueError, match="unknown probe 'jailbreak'"):
        parse_probes("jailbreak")


def test_scan_runs_resumes_reports_and_compares(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "a"
    result = scan(["--model", str(tiny_model_dir), *ENGINE], out)
    assert result.exit_code == 0, result.output
    assert "poison" in result.output and "attack success" in result.output
    got = records(out)
    assert len(got) == 8 and all("attack_success" in r and r["score"] in (0.0, 1.0) for r in got.values())
    assert all(r["score"] == (0.0 if r["attack_success"] else 1.0) for r in got.values())
    assert all(r["shots"] >= 1 for (task, _, _), r in got.items() if task == "many_shot")
    scan_json = json.loads((out / "scan.json").read_text())
    assert set(scan_json["probes"]) == {"poison", "many_shot"}
    assert (out / "scan.html").exists() and (out / "report.html").exists()
    again = scan(["--model", str(tiny_model_dir), *ENGINE], out)  # resume: nothing left to do
    assert again.exit_code == 0 and "0 samples run, 8 already done" in again.output
    compared = CliRunner().invoke(cli, ["compare", str(out), str(out)])
    assert compared.exit_code == 0 and "no significant change" in compared.output


def test_bad_flags_are_usage_errors(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["scan", "--probes", "telepathy", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown probe 'telepathy'" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_in_process_and_served_scans_agree(tiny_model_dir, tmp_path) -> None:
    """The same scan in-process and through `ctxops serve`: identical prompts, outputs and verdicts."""
    local = tmp_path / "local"
    assert scan(["--model", str(tiny_model_dir), *ENGINE], local).exit_code == 0
    port = _free_port()
    cmd = [sys.executable, "-m", "ctxops", "serve", str(tiny_model_dir), "--served-model-name", "tiny", *ENGINE,
           "--port", str(port), "--request-log", ""]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        served = tmp_path / "served"
        url = f"http://127.0.0.1:{port}/v1"
        result = scan(["--endpoint", url, "--model-name", "tiny"], served)
        assert result.exit_code == 0, result.output
    finally:
        server.terminate()
        server.wait(30)
    a, b = records(local), records(served)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["prompt_hash"] == b[key]["prompt_hash"], key
        assert (a[key]["output"], a[key]["attack_success"]) == (b[key]["output"], b[key]["attack_success"]), (
            key
        )
