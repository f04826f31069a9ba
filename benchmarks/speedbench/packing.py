"""GPU packing: aggregate steps/s of 1, 2, 4, ... concurrent jobs on one device."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speedbench.semibench_side import SemiBenchSide
from speedbench.settings import SETTINGS, SPEED_SCRIPT, tiny_setting


def pack_worker(args: argparse.Namespace) -> None:
    """One packed job: warm up, wait for the common start, count steps in the window."""
    s = SETTINGS[args.pack_setting]
    s = tiny_setting(s) if args.tiny else s
    amp, compile_mode = args.pack_mode.split("/")
    with tempfile.TemporaryDirectory() as tmp:
        side = SemiBenchSide(s, args.device, amp, compile_mode, Path(tmp))
        side.full(args.warmup)
        ready = time.time()
        wait = args.pack_start - time.time()
        if wait > 0:
            time.sleep(wait)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.pack_seconds:
            side.full(1)
            steps += 1
        elapsed = time.perf_counter() - start
    print(json.dumps({"steps": steps, "seconds": elapsed, "late": ready > args.pack_start}))


def run_packing(args: argparse.Namespace, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Aggregate steps/s of 1, 2, 4, ... concurrent ViT-S/2 jobs on one device."""
    rows = []
    for n in args.pack:
        start_at = time.time() + args.pack_warmup_s
        cmd = [sys.executable, str(SPEED_SCRIPT), "--pack-worker", "--device", args.device,
               "--pack-setting", args.pack_setting, "--pack-mode", args.pack_mode,
               "--pack-seconds", str(args.pack_seconds), "--pack-start", str(start_at),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        if args.tiny:
            cmd.append("--tiny")
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = []
        deadline = start_at + args.pack_seconds + 60
        for p in procs:
            try:
                stdout, _ = p.communicate(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:  # a stuck job: stop it, count it as finished none
                p.kill()
                stdout, _ = p.communicate()
            if p.returncode == 0 and stdout.strip():
                outs.append(json.loads(stdout.strip().splitlines()[-1]))
        rate = sum(o["steps"] / o["seconds"] for o in outs)
        late = sum(o["late"] for o in outs)
        rows.append({"jobs": n, "finished": len(outs), "steps_per_s": rate, "late_starts": late})
        log(f"  packing {n} jobs: {rate:.2f} steps/s in total ({len(outs)} finished, "
            f"{late} started late)")
    if rows and rows[0]["steps_per_s"]:
        for r in rows:
            r["gain_vs_one"] = r["steps_per_s"] / rows[0]["steps_per_s"]
    return rows
