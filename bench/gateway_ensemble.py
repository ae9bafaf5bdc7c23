"""Accuracy of a 3-arm ensemble against each of its members, on NIAH, with Wilson intervals.

Three `ctxops serve builtin` members that lose different parts of a long prompt (three KV presses that each drop
``--ratio`` of the prompt's KV: streaming_llm, snapkv and h2o), and a gateway with the ``ensemble`` policy
(``majority``) in front of them. ``ctxops eval`` runs the same seeded samples against each member and against the
gateway; the table gives each one's score with its 95% Wilson interval (from the eval's own summary.json) and the
paired comparison of the vote with each member (exact McNemar on the same samples, via ``ctxops compare``'s
numbers: worse/better counts).

    python bench/gateway_ensemble.py --tasks niah_single_1 --lengths 1k --samples 30 --ratio 0.6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gateway_routes import gateway, serve

PRESSES = ("streaming_llm", "snapkv", "h2o")


def evaluate(url: str, model: str, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "ctxops", "eval", "--endpoint", url, "--model-name", model, "--tasks", args.tasks,
           "--lengths", args.lengths, "--samples", str(args.samples), "--out", str(out), "--no-progress",
           "--concurrency", "4", "--api", "completions"]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((out / "summary.json").read_text())
    return {"overall": summary["overall"], "correct": {f"{r['task']}|{r['length']}|{r['seed']}": bool(r["correct"])
                                                       for r in records}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="niah_single_1")
    parser.add_argument("--lengths", default="1k")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--ratio", type=float, default=0.6)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from scipy import stats

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        members = {}
        for press in PRESSES:
            members[press] = serve(work, press, ["builtin", "--kv-cache-memory", "128MiB", "--kv-press", press,
                                                 "--kv-compression-ratio", str(args.ratio)])  # fmt: skip
        arms = [{"name": p, "upstream": url + "/v1"} for p, (url, _) in members.items()]
        gw, gw_proc = gateway(work, "gw-ensemble", "ensemble", arms)
        results = {
            p: evaluate(url + "/v1", "builtin", work / f"run-{p}", args) for p, (url, _) in members.items()
        }
        results["vote"] = evaluate(gw + "/v1", "gw", work / "run-vote", args)
        for _, proc in members.values():
            proc.terminate()  # type: ignore[attr-defined]
        gw_proc.terminate()  # type: ignore[attr-defined]
    table = {}
    vote = results["vote"]["correct"]
    for name, result in results.items():
        row = {length: {k: round(v[k], 1) for k in ("score", "ci_low", "ci_high", "n")}
               for length, v in result["overall"].items()}  # fmt: skip
        if name != "vote":
            keys = vote.keys() & result["correct"].keys()
            worse = sum(result["correct"][k] and not vote[k] for k in keys)
            better = sum(vote[k] and not result["correct"][k] for k in keys)
            p = stats.binomtest(worse, worse + better, 0.5).pvalue if worse + better else 1.0
            row["vote_vs_member"] = {
                "vote_better": better,
                "vote_worse": worse,
                "mcnemar_p": round(float(p), 4),
            }
        table[name] = row
    print(json.dumps(table, indent=1))
    if args.out:
        args.out.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
