"""``semibench status``: how far a sweep has got, from its files alone.

Every run of the config's grid is in one state, read from what the trainer and Snakemake leave
on disk (nothing is asked of Snakemake or the scheduler, so it works beside a local run, on a
SLURM login node, or after everything stopped):

* **done**: ``metrics.json`` exists (the trainer writes it last).
* **running**: the trainer holds the run directory (its ``.lock`` names a live process on
  this machine), or Snakemake marked the job started (``.snakemake/incomplete/``) and a
  Snakemake holds the working directory (``.snakemake/locks/`` lists the run's output). A
  cluster job that is queued or starting counts here too.
* **interrupted**: started, then stopped without a result or an error: marked started by a
  Snakemake that is gone, a job log ending with "stopped by signal" (a time limit,
  pre-emption, Snakemake stopping its jobs) or ``KeyboardInterrupt`` (Ctrl-C), or a
  checkpoint or history without any of the above. The next ``snakemake`` run resumes it from
  its checkpoint.
* **failed**: the job's log (``logs/train/<benchmark>/...``) exists and ends otherwise: its
  last line is shown.
* **not started**: none of these files.

Device-hours spent: each finished run's job time (Snakemake's benchmark file, start-up
included; ``metrics.json``'s ``wall_time_s`` where there is none) plus each unfinished run's
training time up to its last checkpoint (``checkpoint.json``). The ETA of the runs left uses
the median job time of the finished runs of the same task and algorithm (else the same task,
else all), scaled by how far a started run has got; before any run has finished, the
planner's estimate (:mod:`semibench.plan`, ``--device``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Subparsers = argparse._SubParsersAction
STATES = ("done", "running", "interrupted", "failed", "not started")
#: the train rule's log (workflow/rules/train.smk)
TRAIN_LOG = "logs/train/{benchmark}/{task}/{num_labels}/{algorithm}/seed{seed}.log"
#: how much of the end of a log is read for its last line
TAIL_BYTES = 8192
#: how the log of a stopped (not failed) job ends: SIGTERM (a time limit, pre-emption,
#: Snakemake stopping its jobs: semibench.train.trainer.TrainingStopped) or Ctrl-C
STOPPED = ("stopped by signal", "KeyboardInterrupt")
BY = {"task-algorithm": ("task", "algorithm"), "task": ("task",), "algorithm": ("algorithm",)}


@dataclass
class RunStatus:
    """One run of the grid and what its files say."""

    task: str
    num_labels: int
    algorithm: str
    seed: int
    state: str = "not started"
    #: done: the job's seconds (benchmark file, else wall_time_s); else training seconds up to
    #: the last checkpoint (None: none)
    seconds: float | None = None
    #: where ``seconds`` of a finished run comes from: "benchmark" or "metrics"
    source: str = ""
    device: str = ""
    #: (next iteration, iterations) of the last checkpoint
    progress: tuple[int, int] | None = None
    #: the last line of the job's log (failed, interrupted)
    last_line: str = ""
    #: the scheduler's job id that Snakemake recorded (a cluster job)
    job_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.task}/{self.num_labels}/{self.algorithm}/seed{self.seed}"


@dataclass
class Snakemake:
    """What ``.snakemake/`` says: the outputs of jobs started and not finished (with their
    cluster job ids), the outputs a live Snakemake holds, and since when."""

    incomplete: dict[str, str] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    locked_since: float | None = None


def read_snakemake(directory: Path) -> Snakemake:
    """The incomplete markers and locks of Snakemake's file persistence (its default): a
    marker's name is the output's path in URL-safe base64, cut into 254-character parts (the
    first ones as folders named ``@part``)."""
    out = Snakemake()
    marked = directory / "incomplete"
    for folder, _dirs, files in os.walk(marked):
        parts = [p.removeprefix("@") for p in Path(folder).relative_to(marked).parts]
        for name in files:
            try:
                path = base64.urlsafe_b64decode("".join([*parts, name])).decode()
            except (ValueError, UnicodeDecodeError):
                continue  # e.g. Snakemake's migration_underway
            out.incomplete[path] = os.path.join(folder, name)
    locks = directory / "locks"
    try:
        entries = list(os.scandir(locks))
    except OSError:
        entries = []
    for entry in entries:
        if not entry.name.endswith(".output.lock"):
            continue
        try:
            with open(entry.path, encoding="utf-8") as handle:
                out.locked.update(line.strip() for line in handle)
            since = entry.stat().st_mtime
        except OSError:
            continue
        out.locked_since = since if out.locked_since is None else min(out.locked_since, since)
    return out


def _external_job_id(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as handle:
            return str(json.load(handle).get("external_jobid") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def _live_trainer(lock: str, host: str) -> bool:
    """Whether the run directory's ``.lock`` names a live ``semibench`` process on this
    machine (the trainer writes ``pid N on HOST`` into it while it holds it). Another
    machine's trainer cannot be seen from here: False."""
    text = _read_text(lock)
    if text is None:
        return False
    words = text.split()
    if len(words) != 4 or words[0] != "pid" or words[2] != "on" or words[3] != host:
        return False
    try:
        cmdline = Path(f"/proc/{int(words[1])}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"semibench" in cmdline


def last_line(path: str | Path) -> str | None:
    """The last non-empty line of a text file (progress bars' carriage returns count as line
    ends); None when the file does not exist."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def _benchmark_seconds(path: str) -> float | None:
    """The ``s`` column of a Snakemake benchmark file (its first data row)."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\n").split("\t")
            row = handle.readline().rstrip("\n").split("\t")
        return float(row[header.index("s")])
    except (OSError, ValueError, IndexError):
        return None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def _top_field(text: str, name: str) -> Any:
    """A top-level field of a metrics.json as the trainer writes it (atomic_write_json: one
    key a line, indented by 2), found without parsing the whole file: 20,000 of them are read
    in about a second. ``...`` (Ellipsis) when it is not there so."""
    marker = f'\n  "{name}": '
    start = text.find(marker)
    if start < 0:
        return ...
    start += len(marker)
    end = text.find("\n", start)
    try:
        return json.loads(text[start:end if end >= 0 else None].rstrip().rstrip(","))
    except ValueError:
        return ...


def _metrics_fields(text: str) -> tuple[str, float | None]:
    """``device`` and ``wall_time_s`` of a metrics.json's text."""
    device, wall = _top_field(text, "device"), _top_field(text, "wall_time_s")
    if device is ... or wall is ...:  # written some other way: parse it all
        data = _json(text)
        if not isinstance(data, dict):
            return "", None
        device, wall = data.get("device"), data.get("wall_time_s")
    return (str(device) if device else "",
            float(wall) if isinstance(wall, int | float) and not isinstance(wall, bool)
            else None)


def run_status(root: str, benchmark: str, job: tuple[str, int, str, int],
               snakemake: Snakemake, host: str) -> RunStatus:
    """One run's state from its files (see the module's docstring). Plain string paths and
    one ``open`` per file looked at: 20,000 runs are read in seconds."""
    from semibench.report import layout

    task, num_labels, algorithm, seed = job
    status = RunStatus(task, num_labels, algorithm, seed)
    rel = layout.run_dir(benchmark, task, num_labels, algorithm, seed)
    run_dir = os.path.join(root, rel)
    text = _read_text(os.path.join(run_dir, "metrics.json"))
    if text is not None:
        status.state = "done"
        status.device, wall = _metrics_fields(text)
        seconds = _benchmark_seconds(os.path.join(
            root, layout.train_benchmark(benchmark, task, num_labels, algorithm, seed)))
        status.seconds, status.source = (seconds, "benchmark") if seconds is not None else (
            (wall, "metrics") if wall is not None else (None, ""))
        return status
    record = _json(_read_text(os.path.join(run_dir, "checkpoint.json")))
    if isinstance(record, dict):
        done, total = record.get("next_iteration"), record.get("iterations")
        if isinstance(done, int) and isinstance(total, int) and total > 0:
            status.progress = (done, total)
        if isinstance(record.get("elapsed_s"), int | float):
            status.seconds = float(record["elapsed_s"])
    key = f"{rel}/metrics.json"
    marker = snakemake.incomplete.get(key)
    log = last_line(os.path.join(root, TRAIN_LOG.format(
        benchmark=benchmark, task=task, num_labels=num_labels, algorithm=algorithm, seed=seed)))
    if marker is not None:
        status.job_id = _external_job_id(marker)
    if _live_trainer(os.path.join(run_dir, ".lock"), host) or (
            marker is not None and key in snakemake.locked):
        status.state = "running"
    elif marker is not None:
        status.state = "interrupted"
        status.last_line = log or ""
    elif log is not None:
        status.state = "interrupted" if any(s in log for s in STOPPED) else "failed"
        status.last_line = log
    elif status.progress is not None or any(
            os.path.exists(os.path.join(run_dir, name))
            for name in ("checkpoint.pt", "history.log")):
        status.state = "interrupted"
    return status


@dataclass
class Estimate:
    """Device-seconds left, and how each run's time was estimated."""

    seconds: float = 0.0
    basis: Counter = field(default_factory=Counter)


def estimate_left(runs: Sequence[RunStatus], planned: dict[tuple[str, int, str], float]
                  ) -> Estimate:
    """Device-seconds the runs still to do need: the median job time of the finished runs of
    the same task and algorithm, else the same task, else all of them, else the planner's
    ``planned`` seconds per (task, num_labels, algorithm); a started run only its part not
    done. Failed runs are left out (they run again only once their fault is fixed)."""
    pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_task: dict[str, list[float]] = defaultdict(list)
    every: list[float] = []
    for r in runs:
        if r.state == "done" and r.seconds is not None:
            pair[(r.task, r.algorithm)].append(r.seconds)
            per_task[r.task].append(r.seconds)
            every.append(r.seconds)
    medians = {k: statistics.median(v) for k, v in pair.items()}
    task_medians = {k: statistics.median(v) for k, v in per_task.items()}
    overall = statistics.median(every) if every else None
    out = Estimate()
    for r in runs:
        if r.state in ("done", "failed"):
            continue
        if (r.task, r.algorithm) in medians:
            seconds, basis = medians[(r.task, r.algorithm)], "same task and algorithm"
        elif r.task in task_medians:
            seconds, basis = task_medians[r.task], "same task"
        elif overall is not None:
            seconds, basis = overall, "all finished runs"
        elif (r.task, r.num_labels, r.algorithm) in planned:
            seconds, basis = planned[(r.task, r.num_labels, r.algorithm)], "planner"
        else:
            out.basis["no estimate"] += 1
            continue
        if r.progress is not None:
            seconds *= max(0.0, 1 - r.progress[0] / r.progress[1])
        out.seconds += seconds
        out.basis[basis] += 1
    return out


def planned_seconds(config: dict[str, Any], device: str) -> dict[tuple[str, int, str], float]:
    """The planner's seconds per job of the grid (one seed planned: seeds cost the same)."""
    import copy

    from semibench.plan import make_plan

    one_seed = copy.deepcopy(config)
    one_seed["seeds"] = config["seeds"][:1]
    plan = make_plan(one_seed, device)
    return {(j.task, j.num_labels, j.algorithm): j.hours * 3600 for j in plan.jobs}


@dataclass
class SweepStatus:
    config: str
    benchmark: str
    runs: list[RunStatus]
    snakemake: Snakemake
    estimate: Estimate
    #: the device the planner estimated for (None: measured times only)
    planned_on: str | None = None
    #: how long reading the files took (not the planner)
    seconds: float = 0.0

    def count(self, state: str, runs: Iterable[RunStatus] | None = None) -> int:
        return sum(r.state == state for r in (self.runs if runs is None else runs))


def sweep_status(config: dict[str, Any], configfile: str, root: Path,
                 device: str | None = None) -> SweepStatus:
    """Every run of ``config``'s grid under the working directory ``root``."""
    from semibench.config import run_grid

    started = time.perf_counter()
    benchmark = config["benchmark"]
    snakemake = read_snakemake(root / ".snakemake")
    host = platform.node()
    runs = [run_status(str(root), benchmark, job, snakemake, host) for job in run_grid(config)]
    read = time.perf_counter() - started
    planned: dict[tuple[str, int, str], float] = {}
    planned_on = None
    if not any(r.state == "done" and r.seconds is not None for r in runs):
        device = device or ("cpu" if not config.get("gpus_per_job") else None)
        if device is not None:
            planned, planned_on = planned_seconds(config, device), device
    return SweepStatus(configfile, benchmark, runs, snakemake, estimate_left(runs, planned),
                       planned_on, read)


# --------------------------------------------------------------------------- text


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.2f}" if hours < 10 else f"{hours:,.1f}"


def _duration(seconds: float) -> str:
    if seconds < 5400:
        return f"{seconds / 60:,.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} days"


def _listing(title: str, runs: list[RunStatus], show: int, line: Any) -> list[str]:
    if not runs:
        return []
    out = ["", f"{title} ({len(runs):,}):"]
    out += [f"  {r.name}: {line(r)}" for r in runs[:show]]
    if len(runs) > show:
        out.append(f"  ... and {len(runs) - show:,} more (--show {len(runs)} lists them)")
    return out


def _progress(r: RunStatus) -> str:
    parts = []
    if r.progress is not None:
        done, total = r.progress
        parts.append(f"iteration {done:,} of {total:,} ({100 * done / total:.0f} %)")
    elif r.state == "running":
        parts.append("queued or starting (no checkpoint yet)")
    else:
        parts.append("no checkpoint: starts afresh")
    if r.job_id:
        parts.append(f"job {r.job_id}")
    if r.state == "interrupted" and r.last_line:
        parts.append(f"log: {r.last_line}")
    return "; ".join(parts)


def format_status(status: SweepStatus, by: str = "task-algorithm", show: int = 10) -> str:
    """The counts, a table per ``by`` group, the failed, running and interrupted runs, the
    device-hours spent and the ETA."""
    runs = status.runs
    total = len(runs)
    counts = {s: status.count(s) for s in STATES}
    done = counts["done"]
    lines = [f"{status.config}: benchmark {status.benchmark}, {total:,} runs (their files read "
             f"in {status.seconds:.1f} s)",
             ", ".join([f"done {done:,} ({100 * done / max(total, 1):.1f} %)"]
                       + [f"{s} {counts[s]:,}" for s in STATES[1:]])]
    snake = status.snakemake
    if snake.locked_since is not None:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(snake.locked_since))
        lines.append(f"Snakemake holds this directory since {since} (.snakemake/locks; if no "
                     "Snakemake runs, `snakemake --unlock` clears a stale lock)")
    keys = BY[by]
    groups: dict[tuple[Any, ...], list[RunStatus]] = defaultdict(list)
    for r in runs:
        groups[tuple(getattr(r, k) for k in keys)].append(r)
    lines += ["", "| " + " | ".join([*keys, "runs", *STATES, "device-hours"]) + " |",
              "|" + "---|" * len(keys) + "---:|" * (len(STATES) + 2)]
    for group, members in groups.items():
        spent = sum(r.seconds or 0.0 for r in members)
        lines.append("| " + " | ".join([*map(str, group), f"{len(members):,}",
                                        *(f"{status.count(s, members):,}" for s in STATES),
                                        _hours(spent)]) + " |")
    lines += _listing("failed, the last line of each job's log", [
        r for r in runs if r.state == "failed"], show, lambda r: r.last_line or "(empty log)")
    lines += _listing("running", [r for r in runs if r.state == "running"], show, _progress)
    lines += _listing("interrupted, resumed by the next snakemake run",
                      [r for r in runs if r.state == "interrupted"], show, _progress)
    lines += ["", *_cost_lines(status)]
    return "\n".join(lines)


def _cost_lines(status: SweepStatus) -> list[str]:
    runs = status.runs
    finished = [r for r in runs if r.state == "done" and r.seconds is not None]
    unfinished = [r for r in runs if r.state != "done" and r.seconds is not None]
    spent = sum(r.seconds for r in finished) + sum(r.seconds for r in unfinished)
    sources = Counter(r.source for r in finished)
    devices = Counter(r.device for r in finished if r.device)
    line = f"device-hours spent: {_hours(spent)}" if finished or unfinished else \
        "device-hours spent: none yet"
    if finished:
        line += (f": {_hours(sum(r.seconds for r in finished))} in {len(finished):,} finished "
                 f"runs ({sources['benchmark']:,} timed by Snakemake's benchmark files, "
                 f"{sources['metrics']:,} by metrics.json)")
    if unfinished:
        line += (f"{' +' if finished else ':'} {_hours(sum(r.seconds for r in unfinished))} in "
                 f"{len(unfinished):,} unfinished runs up to their last checkpoint")
    if devices:
        line += "; on " + ", ".join(f"{d} ({n:,})" for d, n in devices.most_common())
    out = [line]
    estimate = status.estimate
    left = sum(r.state not in ("done", "failed") for r in runs)
    failed = sum(r.state == "failed" for r in runs)
    if not left:
        out.append("ETA: nothing left to run" + (f" ({failed:,} failed)" if failed else ""))
        return out
    counted = sum(n for b, n in estimate.basis.items() if b != "no estimate")
    if not counted:
        out.append(f"ETA: unknown: no run has finished yet and no planner estimate "
                   f"(`semibench status --device h100` plans the {left:,} runs on that device)")
        return out
    bases = ", ".join(f"{b} {n:,}" for b, n in estimate.basis.most_common())
    where = f" on {status.planned_on}" if status.planned_on else ""
    line = (f"ETA: {_hours(estimate.seconds)} device-hours left for {left:,} runs (estimated "
            f"from: {bases}{where})")
    running = status.count("running")
    if running:
        line += (f"; at the {running:,} jobs running now, about "
                 f"{_duration(estimate.seconds / running)}")
    if failed:
        line += f"; not counted: {failed:,} failed"
    out.append(line)
    return out


def as_dict(status: SweepStatus) -> dict[str, Any]:
    return {"config": status.config, "benchmark": status.benchmark,
            "counts": {s: status.count(s) for s in STATES},
            "seconds_left": status.estimate.seconds,
            "estimate_basis": dict(status.estimate.basis),
            "planned_on": status.planned_on,
            "runs": [asdict(r) for r in status.runs]}


# --------------------------------------------------------------------------- command


def add_status(sub: Subparsers) -> None:
    p = sub.add_parser("status", help="how far a sweep has got: done, running, interrupted, "
                       "failed and not started runs, device-hours spent and an ETA, from its "
                       "files")
    p.add_argument("--configfile", required=True)
    p.add_argument("--directory", default=".",
                   help="the workflow's working directory, where results/, logs/ and "
                   ".snakemake/ are (default: the current directory)")
    p.add_argument("--by", choices=list(BY), default="task-algorithm",
                   help="the table's rows (default: task-algorithm)")
    p.add_argument("--show", type=int, default=10,
                   help="list at most this many failed, running and interrupted runs each "
                   "(default: 10)")
    p.add_argument("--device", default=None,
                   help="before any run has finished, the ETA is the planner's estimate on "
                   "this device (cpu, h100, ...; default: cpu when gpus_per_job is 0)")
    p.add_argument("--json", default=None, help="also write every run's state here, as JSON")
    p.set_defaults(func=status)


def status(args: argparse.Namespace) -> None:
    from semibench.cli.configs import file_error
    from semibench.config import ConfigError
    from semibench.config_file import ConfigFileError, check_config_file
    from semibench.io import atomic_write_json
    from semibench.plan import PlanError

    prog = "semibench status"
    path = Path(args.configfile)
    try:
        config, _ = check_config_file(path, weights="skip")
        result = sweep_status(config, args.configfile, Path(args.directory),
                              args.device.lower() if args.device else None)
    except (ConfigError, PlanError) as err:
        raise SystemExit(f"{prog}: error: {path}: {err}") from None
    except ConfigFileError as err:
        raise SystemExit(file_error(err, prog)) from None
    print(format_status(result, args.by, max(0, args.show)))
    if args.json:
        atomic_write_json(Path(args.json), as_dict(result))


COMMANDS = [add_status]
