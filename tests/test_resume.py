"""A result belongs to the inputs that produced it, and faults heal without a person.

Resume only an interrupted run of the same inputs (settings, prepared data, split, code); a
finished run is never resumed; prepared data that changed under their meta.json, a raw file
that fails its checksum, a corrupt checkpoint, temporaries of killed writes, SIGTERM and a full
disk each get one clear line or heal by themselves.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from semibench.io import DirectoryBusyError, exclusive_directory, sha256_file
from semibench.log import configure
from semibench.splits import make_split, write_split
from semibench.tasks import PreparedDataError, create_task, load_prepared
from semibench.tasks.base import read_manifest
from semibench.train import loop, provenance
from semibench.train.checkpoint import CheckpointStore, write_torch
from semibench.train.loop import TrainingStopped, train_run
from tests.helpers.runs import interrupted_run
from tests.helpers.runs import mnist_settings as settings


@pytest.fixture(autouse=True)
def _notes_on_stderr():
    """A run's notes go through logging, as ``semibench train`` configures it."""
    configure()


@pytest.fixture()
def prepared(prepared_mnist, tmp_path) -> Path:
    """A private copy of the prepared MNIST data that a test may change."""
    return Path(shutil.copytree(prepared_mnist, tmp_path / "prepared"))


@pytest.fixture()
def split(prepared, tmp_path) -> Path:
    data = load_prepared(prepared)
    path = tmp_path / "split.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), path)
    return path


def reprepare_with_shifted_test_labels(prepared: Path) -> None:
    """What the prepare rule does when the source changed: new data.npz, new meta.json."""
    with np.load(prepared / "data.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["test_y"] = (arrays["test_y"] + 1) % 10
    with open(prepared / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)
    meta = json.loads((prepared / "meta.json").read_text())
    meta["data_sha256"] = sha256_file(prepared / "data.npz")
    (prepared / "meta.json").write_text(json.dumps(meta))


def outcome(metrics: dict) -> tuple:
    return metrics["best"], metrics["last"]


# ---------------------------------------------------------------- 2. results belong to inputs


def test_changed_data_is_not_resumed(prepared, split, tmp_path, monkeypatch, capsys):
    run = settings()
    interrupted_run(monkeypatch, run, prepared, split, tmp_path / "run")
    reprepare_with_shifted_test_labels(prepared)
    capsys.readouterr()
    after = train_run(run, prepared, split, tmp_path / "run")
    err = capsys.readouterr().err
    assert "not resumable: the prepared data changed" in err and "starting afresh" in err
    assert "resumed from" not in err
    fresh = train_run(run, prepared, split, tmp_path / "fresh")
    assert outcome(after) == outcome(fresh)
    assert after["last"]["test_error"] > 80  # shifted labels: the old 10-40 % must not come back


def test_changed_split_settings_or_code_are_not_resumed(prepared, split, tmp_path, monkeypatch,
                                                       capsys):
    run = settings()
    out = tmp_path / "run"
    interrupted_run(monkeypatch, run, prepared, split, out)
    other = make_split(load_prepared(prepared).train_y, task="mnist", num_classes=10,
                       num_labels=40, val_per_class=20, seed=1)
    write_split(other, split)
    capsys.readouterr()
    train_run(run, prepared, split, out)
    assert "the split file changed" in capsys.readouterr().err

    interrupted_run(monkeypatch, run, prepared, split, out)
    train_run(settings(lr=0.02), prepared, split, out)
    assert "the run's settings (train) changed" in capsys.readouterr().err

    interrupted_run(monkeypatch, run, prepared, split, out)
    monkeypatch.setattr(provenance, "code_digest", lambda: "0" * 64)
    train_run(run, prepared, split, out)
    assert "SemiBench's code changed" in capsys.readouterr().err


def test_finished_run_is_never_resumed(prepared, split, tmp_path, capsys):
    run = settings()
    first = train_run(run, prepared, split, tmp_path)
    assert not list(tmp_path.glob("checkpoint*"))
    (tmp_path / "metrics.json").unlink()  # what --forcerun does
    capsys.readouterr()
    again = train_run(run, prepared, split, tmp_path)
    err = capsys.readouterr().err
    assert "resumed from" not in err and outcome(again) == outcome(first)


def test_old_checkpoint_without_inputs_is_not_resumed(prepared, split, tmp_path, monkeypatch,
                                                      capsys):
    out = tmp_path / "run"
    interrupted_run(monkeypatch, settings(), prepared, split, out)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["inputs"]
    CheckpointStore(out).clear()
    CheckpointStore(out).save(state)
    train_run(settings(), prepared, split, out)
    assert "records no inputs" in capsys.readouterr().err


def test_prepared_data_changed_under_its_meta(prepared, split, tmp_path):
    with np.load(prepared / "data.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["test_y"] = (arrays["test_y"] + 1) % 10
    with open(prepared / "data.npz", "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(PreparedDataError) as err:
        train_run(settings(), prepared, split, tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message and str(prepared / "data.npz") in message
    assert f"--forcerun {prepared / 'meta.json'}" in message
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unreadable_prepared_data(prepared, split, tmp_path):
    (prepared / "data.npz").write_bytes(b"PK\x03\x04 not really a zip")
    meta = json.loads((prepared / "meta.json").read_text())
    meta["data_sha256"] = sha256_file(prepared / "data.npz")
    (prepared / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PreparedDataError, match=r"data\.npz is unreadable .*--forcerun"):
        train_run(settings(), prepared, split, tmp_path / "run")


def test_raw_file_failing_its_checksum_names_the_refetch(tmp_path):
    task = create_task("mnist")
    raw = tmp_path / "raw"
    task.fetch(raw)
    victim = next(p for p in raw.iterdir() if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(Exception, match="SHA-256 mismatch") as err:
        read_manifest(raw)
    assert f"--forcerun {raw / 'manifest.json'}" in str(err.value)
    task.fetch(raw)  # what that command runs: the file is fetched again and verifies
    read_manifest(raw)


# ---------------------------------------------------------------- 3. faults heal


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_checkpoint_falls_back_to_the_previous_generation(
        prepared, split, tmp_path, monkeypatch, capsys, damage):
    run = settings(iterations=9)
    reference = train_run(run, prepared, split, tmp_path / "ref")
    out = tmp_path / "run"
    interrupted_run(monkeypatch, run, prepared, split, out, step=7)  # checkpoints at 3 and 6
    ckpt = out / "checkpoint.pt"
    content = ckpt.read_bytes()
    ckpt.write_bytes({"truncated": content[: len(content) // 2], "empty": b"",
                      "garbage": os.urandom(len(content))}[damage])
    capsys.readouterr()
    resumed = train_run(run, prepared, split, out)
    err = capsys.readouterr().err
    assert "checkpoint.pt is" in err and "resumed from iteration 3 (checkpoint.prev.pt" in err
    assert outcome(resumed) == outcome(reference)


def flip_a_byte_in_a_tensor(path: Path) -> None:
    """Flip one byte in the middle of the largest weight of a checkpoint, as a bad sector or a
    faulty copy would: torch still loads the file, with a different weight in it."""
    state = torch.load(path, weights_only=True)
    name, weight = max(state["model"].items(), key=lambda item: item[1].numel())
    raw = bytes(weight.untyped_storage().tolist())  # as stored (e.g. channels-last)
    content = bytearray(path.read_bytes())
    at = content.find(raw)
    assert at > 0 and content.find(raw, at + 1) == -1
    content[at + len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(content))
    damaged = torch.load(path, weights_only=True)  # nothing in torch notices
    assert not torch.equal(damaged["model"][name], weight)


def test_flipped_byte_in_a_tensor_is_never_resumed_silently(tmp_path):
    store = CheckpointStore(tmp_path)
    first = {"next_iteration": 3, "model": {"w": torch.arange(4096, dtype=torch.float32)}}
    second = {"next_iteration": 6, "model": {"w": torch.arange(4096, dtype=torch.float32) * 2}}
    store.save(first)
    store.save(second)
    flip_a_byte_in_a_tensor(store.current)
    lines: list[str] = []
    loaded = store.load(lines.append)
    assert loaded is not None and loaded.path == store.previous
    assert torch.equal(loaded.state["model"]["w"], first["model"]["w"])
    assert lines == [f"{store.current} is corrupt or truncated: its SHA-256 differs from the "
                     "one recorded in checkpoint.json; ignoring it"]
    # without its record, the damaged file cannot be verified: it is not resumed either
    store.record(store.current).unlink()
    lines.clear()
    loaded = store.load(lines.append)
    assert loaded is not None and loaded.path == store.previous
    assert lines == [f"{store.current} is not verifiable: its SHA-256 record checkpoint.json "
                     "is missing, so its bytes cannot be checked; ignoring it"]
    # an unreadable record is no record; with neither, nothing is resumed
    store.record(store.current).write_text("{not json")
    store.record(store.previous).unlink()
    lines.clear()
    assert store.load(lines.append) is None
    assert "checkpoint.json is unreadable (JSONDecodeError)" in lines[0]
    assert "checkpoint.prev.json is missing" in lines[1]


def test_an_intact_checkpoint_without_its_record_is_not_resumed(tmp_path):
    """The fault of issue 21: a checkpoint with no record was trusted. Intact or not, bytes
    that cannot be checked are not resumed."""
    store = CheckpointStore(tmp_path)
    store.save({"next_iteration": 3, "model": {"w": torch.ones(8)}})
    store.record(store.current).unlink()
    lines: list[str] = []
    assert store.load(lines.append) is None
    assert "not verifiable" in lines[0]


@pytest.mark.parametrize("crash_at", range(1, 6))
def test_a_kill_at_any_moment_of_a_save_leaves_only_verified_checkpoints(tmp_path, monkeypatch,
                                                                        crash_at):
    """Killed between any two file operations of a save, the store still resumes a verified
    generation: the new one once it is in place, else the one before."""
    from semibench.train import checkpoint

    store = CheckpointStore(tmp_path)
    store.save({"next_iteration": 3, "model": {"w": torch.ones(8)}})
    store.save({"next_iteration": 6, "model": {"w": torch.ones(8) * 2}})
    calls = {"n": 0}

    def step(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == crash_at:
                raise KeyboardInterrupt("killed")
            return real(*args, **kwargs)
        return wrapped

    # the file operations of a save, in order: replace(current -> prev), replace(record ->
    # prev record), write the new record, replace(tmp -> current)
    monkeypatch.setattr(checkpoint.os, "replace", step(os.replace))
    monkeypatch.setattr(checkpoint, "atomic_write_json", step(checkpoint.atomic_write_json))
    with pytest.raises(KeyboardInterrupt):
        store.save({"next_iteration": 9, "model": {"w": torch.ones(8) * 3}})
    monkeypatch.undo()
    lines: list[str] = []
    store = CheckpointStore(tmp_path)  # the rerun
    loaded = store.load(lines.append)
    assert loaded is not None, lines
    assert loaded.state["next_iteration"] in (6, 9)
    assert not any("not verifiable" in line or "corrupt" in line for line in lines), lines
    # the rerun's next checkpoint keeps a verified fallback: the generation it resumed
    store.save({"next_iteration": 12, "model": {"w": torch.ones(8) * 4}})
    flip_a_byte_in_a_tensor(store.current)
    lines.clear()
    fallback = CheckpointStore(tmp_path).load(lines.append)
    assert fallback is not None and fallback.path == store.previous, lines
    assert fallback.state["next_iteration"] == loaded.state["next_iteration"]


def test_a_corrupt_checkpoint_is_never_kept_as_the_fallback(tmp_path):
    """Resumed from the previous generation because the current one is corrupt, the next
    save deletes the corrupt one instead of keeping it as the fallback."""
    store = CheckpointStore(tmp_path)
    store.save({"next_iteration": 3, "model": {"w": torch.ones(8)}})
    store.save({"next_iteration": 6, "model": {"w": torch.ones(8) * 2}})
    flip_a_byte_in_a_tensor(store.current)
    rerun = CheckpointStore(tmp_path)
    assert rerun.load(lambda line: None).state["next_iteration"] == 3
    rerun.save({"next_iteration": 6, "model": {"w": torch.ones(8) * 2}})
    flip_a_byte_in_a_tensor(rerun.current)
    again = CheckpointStore(tmp_path).load(lambda line: None)
    assert again is not None and again.state["next_iteration"] == 3


@pytest.mark.parametrize("records", ["kept", "its own deleted", "all deleted"])
def test_flipped_byte_in_a_resumed_run(prepared, split, tmp_path, monkeypatch, capsys, records):
    """A checkpoint with one flipped byte in a weight, with and without its record: the run
    goes back to the verified previous generation (or starts afresh when nothing can be
    verified), says why in history.log, and ends with the uninterrupted run's numbers."""
    run = settings(iterations=9)
    reference = train_run(run, prepared, split, tmp_path / "ref")
    out = tmp_path / "run"
    interrupted_run(monkeypatch, run, prepared, split, out, step=7)  # checkpoints at 3 and 6
    flip_a_byte_in_a_tensor(out / "checkpoint.pt")
    if records != "kept":
        (out / "checkpoint.json").unlink()
    if records == "all deleted":
        (out / "checkpoint.prev.json").unlink()
    capsys.readouterr()
    resumed = train_run(run, prepared, split, out)
    history = (out / "history.log").read_text()
    why = {"kept": "corrupt or truncated: its SHA-256 differs from the one recorded in "
                   "checkpoint.json",
           "its own deleted": "not verifiable: its SHA-256 record checkpoint.json is missing",
           "all deleted": "not verifiable: its SHA-256 record checkpoint.json is missing"}[records]
    assert f"checkpoint.pt is {why}" in history
    if records == "all deleted":
        assert "checkpoint.prev.pt is not verifiable" in history
        assert "no usable checkpoint; starting afresh" in history
        assert "resumed from" not in history
    else:
        assert "resumed from iteration 3 (checkpoint.prev.pt" in history
    assert outcome(resumed) == outcome(reference)


def test_no_usable_checkpoint_starts_afresh(prepared, split, tmp_path, monkeypatch, capsys):
    run = settings()
    reference = train_run(run, prepared, split, tmp_path / "ref")
    out = tmp_path / "run"
    interrupted_run(monkeypatch, run, prepared, split, out)
    (out / "checkpoint.pt").write_bytes(b"")
    capsys.readouterr()
    again = train_run(run, prepared, split, out)
    err = capsys.readouterr().err
    assert "checkpoint.pt is empty" in err and "no usable checkpoint; starting afresh" in err
    assert outcome(again) == outcome(reference)


def test_temporaries_of_killed_writes_are_removed(prepared, split, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    left = [out / ".checkpoint.pt.k2j4.tmp", out / ".metrics.json.x8a1.tmp"]
    for path in left:
        path.write_bytes(b"partial")
    train_run(settings(), prepared, split, out)
    assert not any(p.exists() for p in left) and not list(out.glob("*.tmp"))
    assert "removed .checkpoint.pt.k2j4.tmp, left by a killed write" in capsys.readouterr().err


def test_sigterm_checkpoints_at_the_next_step(prepared, split, tmp_path, monkeypatch):
    run = settings(iterations=9)
    reference = train_run(run, prepared, split, tmp_path / "ref")
    original = loop.Trainer.train_step

    def preempted(self, step, *args):
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends at its time limit
        return original(self, step, *args)

    monkeypatch.setattr(loop.Trainer, "train_step", preempted)
    out = tmp_path / "run"
    with pytest.raises(TrainingStopped, match="after iteration 5 of 9"):
        train_run(run, prepared, split, out)
    monkeypatch.undo()
    assert not (out / "metrics.json").exists()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["next_iteration"] == 5  # lost: nothing, not the 2 steps since iteration 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    resumed = train_run(run, prepared, split, out)
    assert outcome(resumed) == outcome(reference)
    strip = [lambda p: [r.rsplit(",", 1)[0] for r in p.read_text().splitlines()]][0]
    assert strip(out / "curve.csv") == strip(tmp_path / "ref" / "curve.csv")


def test_full_disk_is_named(tmp_path):
    with pytest.raises(OSError) as err:
        write_torch(Path("/dev/full"), {"w": torch.zeros(1000)})
    assert err.value.errno == errno.ENOSPC
    assert "no space left on device while writing /dev/full" in str(err.value)


def test_second_live_trainer_is_refused(tmp_path):
    busy = pytest.raises(DirectoryBusyError, match=f"pid {os.getpid()}")
    with exclusive_directory(tmp_path), busy, exclusive_directory(tmp_path):
        pass
    with exclusive_directory(tmp_path):  # released with its holder
        pass


def _cli(run: dict, prepared: Path, split: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "semibench.cli", "train", "--run-config", json.dumps(run),
            "--prepared", str(prepared), "--split", str(split), "--out-dir", str(out),
            "--threads", "1", "--backtranslations", ""]


@pytest.mark.slow
def test_cli_faults_are_one_line(prepared, split, tmp_path):
    """`semibench train` as the rules call it: SIGTERM exits 143 after a checkpoint; a missing
    GPU or changed data are one line each, with no traceback."""
    run = settings("supervised", iterations=100_000, eval_every=100_000)
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(run, prepared, split, out), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert re.search(r"stopped by signal 15 after iteration \d+ of 100000; checkpoint written",
                     err), err[-2000:]
    assert "Traceback" not in err and (out / "checkpoint.pt").exists()

    cuda = settings("supervised", device="cuda")
    done = subprocess.run(_cli(cuda, prepared, split, tmp_path / "cuda"), capture_output=True,
                          text=True)
    if not torch.cuda.is_available():
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            "semibench train: error: train.device=cuda, but this machine has no usable CUDA "
            "device (set train.device: auto or cpu)")

    reprepare_with_shifted_test_labels(prepared)
    (prepared / "data.npz").write_bytes((prepared / "data.npz").read_bytes()[:-10])
    done = subprocess.run(_cli(run, prepared, split, out), capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("semibench train: error: ") and "--forcerun" in last


def test_full_disk_in_an_atomic_write_names_the_file(tmp_path):
    from semibench.io import atomic_path

    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as err, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises
    assert err.value.errno == errno.ENOSPC
    assert f"no space left on device while writing {target}" in str(err.value)
    assert "MiB free there" in str(err.value)
    assert not target.exists() and not list(tmp_path.glob("*.tmp"))


def test_sigterm_during_start_up_stops_after_the_first_step(prepared, split, tmp_path):
    """A SIGTERM caught by the CLI while it was still importing torch is honoured as soon as
    the trainer can save: after one step, with a checkpoint."""
    run = settings(iterations=9)
    with pytest.raises(TrainingStopped, match="after iteration 1 of 9"):
        train_run(run, prepared, split, tmp_path, early_signals=[signal.SIGTERM])
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["next_iteration"] == 1
