"""Where `make demo`'s time and memory go: `rlaif run configs/quickstart.yaml` in a child process,
then each stage's wall time, share of the total and peak resident memory (VmHWM, reset at the
start of every stage) as `rlaif run` records them in the run's manifest.

    python bench/bench_demo.py [--out /tmp/bench-demo] [KEY=VALUE overrides ...]
    python bench/bench_demo.py --read runs/demo      # the figures of a finished run (e.g. make demo's)

The run folder is deleted first, so every stage runs. Figures go into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.table import Table

from _common import add_threads_option, start  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 20 * 60  # the goal for the default demo on 2 cores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/bench-demo", help="run folder (deleted first)")
    ap.add_argument("--read", help="only print the figures recorded in this finished run folder")
    ap.add_argument("overrides", nargs="*", help="config overrides passed to rlaif run")
    add_threads_option(ap)
    args = ap.parse_args()
    console = start(args)
    out = Path(args.read or args.out)
    code = "not run here"
    if not args.read:
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "rlaif", "run", "configs/quickstart.yaml", f"run.out={out}", *args.overrides]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=ROOT)
        total = time.perf_counter() - t0
        if res.returncode not in (0, 1):  # 1: a gate failed, which is a finding, not a failed run
            sys.exit(f"rlaif run failed with exit code {res.returncode}")
        code = res.returncode
    stages = json.loads((out / "manifest.json").read_text())["stages"]["run"]["stages"]
    if args.read:  # start-up is not recorded: the total is the stages' sum
        total = sum(s["seconds"] for s in stages.values())
    table = Table("stage", "wall s", "share of total", "peak RSS MiB")
    for name, s in stages.items():
        table.add_row(name, f"{s['seconds']:.1f}", f"{s['seconds'] / total:.1%}", f"{s['peak_rss_mb']:.0f}")
    staged = sum(s["seconds"] for s in stages.values())
    table.add_row("start-up and model loading", f"{total - staged:.1f}", f"{(total - staged) / total:.1%}", "")
    table.add_row("total (rlaif run)", f"{total:.1f}", f"{total / LIMIT_S:.2f} of the 20-minute goal", "")
    console.print(table)
    console.print(f"exit code {code}; report: {out / 'report.html'}")


if __name__ == "__main__":
    main()
