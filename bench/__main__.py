"""``python -m bench [--quick] [name ...]`` (``make bench``): the named scenarios (all by default:
ingest, batch, pipeline, latency, and search when bench/search.py is present) on fresh embedded
servers, one table of figures beside their ceilings and targets, merged into
bench/results/latest.json (other benchmarks' keys are kept).

``--quick`` shortens every scenario (for development; its figures are not the ones to quote).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, ingest, pipeline

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("ingest", "batch", "pipeline", "latency", "search")

#: (label, path into the results, target, higher is better)
TARGETS = [
    ("ingest requests/s", ("ingest", "ingest", "requests_per_s"), 5000, True),
    ("ingest p99 ms", ("ingest", "ingest", "p99_ms"), 25, False),
    ("batch docs/s", ("batch", "docs_per_s"), 10_000, True),
    ("pipeline 1 worker docs/s", ("pipeline", "workers_1", "docs_per_s"), 1800, True),
    ("pipeline 2 workers docs/s", ("pipeline", "workers_2", "docs_per_s"), 2400, True),
    ("pipeline 1 worker, transitions only", ("pipeline", "transitions_1", "docs_per_s"), 1800, True),
    ("pipeline 2 workers, transitions only", ("pipeline", "transitions_2", "docs_per_s"), 2400, True),
    ("202 → indexed p50 ms", ("latency", "p50_ms"), 100, False),
]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split()[1]
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 2**20, 1),
            "python": platform.python_version(), "kernel": platform.release()}  # fmt: skip


def _get(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, path, target, higher in TARGETS:
        value = _get(results, path)
        if value is None:
            continue
        met = value >= target if higher else value <= target
        # How far off, as a share of the target: "missed by 12 %".
        gap = (target - value) / target if higher else (value - target) / target
        rows.append(
            {"target": label, "value": value, "goal": target, "met": met, "missed_by": None if met else gap}
        )
    return rows


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pipeline_row(label: str, run: dict[str, Any], c: dict[str, Any] | None) -> str:
    ratio = f"/ C = {run['docs_per_s'] / c['jobs_per_s']:.2f}" if c and c["jobs_per_s"] else ""
    return (
        f"{label:<44} {_fmt(run['docs_per_s']):>14} "
        f"{'':>8} {'':>8}  indexed {run['indexed']}, failed {run['failed']} {ratio}"
    )


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    m = results["machine"]
    add(f"Search Hub benchmark — {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB")
    add(f"started {results['started_at']}" + (" (--quick: not figures to quote)" if results["quick"] else ""))
    add("")
    add(f"{'scenario':<44} {'figure':>14} {'p50 ms':>8} {'p99 ms':>8}  beside")
    add("-" * 100)
    if "ingest" in results:
        i = results["ingest"]
        real, a, b = i["ingest"], i["ceiling_a"], i["ceiling_b"]
        add(f"{'1. ingest POST /v1/documents (req/s)':<44} {_fmt(real['requests_per_s']):>14} "
            f"{_fmt(real['p50_ms'], 1):>8} {_fmt(real['p99_ms'], 1):>8}  "
            f"errors {real['errors']}, {real['generator']} CPU {real['generator_cpu_share']:.0%}, "
            f"CPU: API {i['api_cpu_share']:.0%} PG {i['postgres_cpu_share']:.0%} "
            f"Redis {i['redis_cpu_share']:.0%}, machine busy {i['machine_cpu_share']:.0%}")  # fmt: skip
        add(
            f"{'   ceiling A: bare Starlette + msgspec':<44} {_fmt(a['requests_per_s']):>14} "
            f"{_fmt(a['p50_ms'], 1):>8} {_fmt(a['p99_ms'], 1):>8}  ingest / A = {i['ingest_over_a']:.2f}"
        )
        add(
            f"{'   ceiling B: 2 inserts + arq enqueue, no HTTP':<44} {_fmt(b['ops_per_s']):>14} "
            f"{'':>8} {'':>8}  ingest / B = {i['ingest_over_b']:.2f}"
        )
    if "batch" in results:
        bt = results["batch"]
        add(
            f"{'2. batch of ' + str(bt['batch_size']) + ' (docs/s)':<44} {_fmt(bt['docs_per_s']):>14} "
            f"{'':>8} {'':>8}  {bt['batches']} batches, {bt['concurrency']} at a time"
        )
    if "pipeline" in results:
        p = results["pipeline"]
        for w in (1, 2):
            run, c, moves = p.get(f"workers_{w}"), p.get(f"ceiling_c_{w}"), p.get(f"transitions_{w}")
            if run:
                docs = f"{run['documents'] // 1000}k docs"
                add(_pipeline_row(f"3. pipeline {w} worker(s), {docs} (docs/s)", run, c))
            if c:
                add(f"{f'   ceiling C: bare arq no-op jobs, {w} proc':<44} {_fmt(c['jobs_per_s']):>14}")
            if moves:
                add(_pipeline_row(f"   transitions only, {w} worker(s)", moves, c))
    if "latency" in results:
        lt = results["latency"]
        add(
            f"{'3b. 202 → indexed at ' + _fmt(lt['rate_per_s']) + ' docs/s':<44} "
            f"{_fmt(lt['achieved_rate_per_s']):>14} {_fmt(lt['p50_ms'], 1):>8} {_fmt(lt['p99_ms'], 1):>8}  "
            f"{lt['documents']} documents"
        )
    if "search_run" in results:
        add(f"{'4. search (bench/search.py, printed above)':<44} {results['search_run']['status']:>14}")
    mem = results.get("memory", {})
    if mem:
        add(
            f"{'5. peak RSS MiB: API / worker':<44} {_fmt(mem.get('api_peak_rss_mib'), 1):>14} "
            f"{_fmt(mem.get('worker_peak_rss_mib'), 1):>8}"
        )
    add("")
    add("targets:")
    for v in results["targets"]:
        verdict = "met" if v["met"] else f"MISSED by {v['missed_by']:.0%}"
        add(f"  {v['target']:<38} {_fmt(v['value'], 1):>10}  goal {_fmt(v['goal'])}: {verdict}")
    return "\n".join(lines)


def run_search() -> dict[str, Any]:
    """The search benchmark (bench/search.py, its own servers and corpus), when it is present. It
    records its figures under "search" in latest.json itself."""
    if importlib.util.find_spec("bench.search") is None:
        return {"status": "absent"}
    done = subprocess.run([sys.executable, "-c", "import bench.search as s; s.main()"], check=False)
    return {"status": "ok" if done.returncode == 0 else f"exit {done.returncode}"}


def write_results(results: dict[str, Any], path: Path) -> None:
    """Our keys into latest.json, keeping those other benchmarks wrote (bench/search.py's)."""
    path.parent.mkdir(exist_ok=True)
    try:
        merged = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        merged = {}
    merged.update(results)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="python -m bench")
    args.add_argument("--quick", action="store_true", help="short runs, for development")
    args.add_argument("names", nargs="*", metavar="NAME", help="some of: " + ", ".join(SCENARIOS))
    opts = args.parse_args(argv)
    wanted = set(opts.names or SCENARIOS)
    unknown = wanted - set(SCENARIOS)
    if unknown:
        args.error(f"unknown scenarios {sorted(unknown)}")
    quick = opts.quick
    seconds = 3.0 if quick else 10.0
    n = 4000 if quick else 20_000
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "settings": {k: v for k, v in os.environ.items() if k.startswith("SEARCHHUB_BENCH_")},
    }
    t0 = time.monotonic()
    with harness.stack() as s:
        if "ingest" in wanted:
            print("bench: ingest (ceiling A, ceiling B, the route) …", flush=True)
            results["ingest"] = ingest.ingest(s, seconds=seconds)
        if "batch" in wanted:
            print("bench: batch …", flush=True)
            results["batch"] = ingest.batch(s, batches=8 if quick else 20)
        if "pipeline" in wanted:
            results["pipeline"] = {}
            for w in (1, 2):
                print(f"bench: pipeline with {w} worker(s), then ceiling C …", flush=True)
                results["pipeline"][f"workers_{w}"] = pipeline.pipeline(s, workers=w, n=n)
                results["pipeline"][f"ceiling_c_{w}"] = pipeline.ceiling_c(s, processes=w, n=n)
                print(f"bench: pipeline with {w} worker(s), transitions only …", flush=True)
                results["pipeline"][f"transitions_{w}"] = pipeline.pipeline(
                    s, workers=w, n=n, transitions_only=True
                )
        if "latency" in wanted:
            print("bench: 202 → indexed at 200 docs/s …", flush=True)
            results["latency"] = pipeline.latency(s, seconds=seconds)
    if "search" in wanted:
        print("bench: search …", flush=True)
        results["search_run"] = run_search()
    api_rss = [
        _get(results, p)
        for p in (
            ("ingest", "api_peak_rss_mib"),
            ("batch", "api_peak_rss_mib"),
            ("latency", "api_peak_rss_mib"),
        )
    ]
    worker_rss = [_get(results, ("pipeline", f"workers_{w}", "worker_peak_rss_mib")) for w in (1, 2)]
    worker_rss.append(_get(results, ("latency", "worker_peak_rss_mib")))
    results["memory"] = {
        "api_peak_rss_mib": max((v for v in api_rss if v is not None), default=None),
        "worker_peak_rss_mib": max((v for v in worker_rss if v is not None), default=None),
    }
    results["targets"] = verdicts(results)
    results["duration_s"] = time.monotonic() - t0
    write_results(results, RESULTS / "latest.json")
    print()
    print(table(results))
    print(f"\nwritten: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
