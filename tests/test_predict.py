"""Use a trained model: ``semibench predict``, ``semibench evaluate`` and ``load_run``, on a
tiny MNIST run trained here."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import semibench
from semibench.cli import main
from semibench.config import check_config, run_config
from semibench.errors import SemiBenchError
from semibench.splits import make_split, write_split
from semibench.tasks import load_prepared
from semibench.train.evaluate import all_logits
from semibench.train.loop import train_run
from tests.helpers.runs import train

TRAIN = train(eval_batch_size=64, keep_weights="both")  # both checkpoints to compare


@pytest.fixture(scope="module")
def run_dir(prepared_mnist, tmp_path_factory) -> Path:
    """A finished FixMatch run (with EMA, so model_best.pt holds the EMA weights)."""
    root = tmp_path_factory.mktemp("run")
    data = load_prepared(prepared_mnist)
    split = root / "seed0.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), split)
    cfg = check_config({"algorithms": ["fixmatch"], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [40], "train": TRAIN}}})
    out = root / "run"
    train_run(run_config(cfg, "mnist", 40, "fixmatch", 0), prepared_mnist, split, out)
    return out


@pytest.fixture(scope="module")
def images(prepared_mnist, tmp_path_factory) -> tuple[Path, list[int]]:
    """Five test images as PNG files, plus an RGB JPEG of another size."""
    folder = tmp_path_factory.mktemp("images")
    data = load_prepared(prepared_mnist)
    picked = [0, 1, 2, 3, 4]
    for i in picked:
        Image.fromarray(data.test_x[i, 0]).save(folder / f"digit{i}.png")
    big = np.repeat(np.repeat(data.test_x[5, 0], 2, axis=0), 2, axis=1)
    Image.fromarray(np.stack([big] * 3, axis=-1)).save(folder / "big_rgb.jpg", quality=95)
    (folder / "notes.md").write_text("not an image")  # ignored in a folder: no image suffix
    return folder, picked


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_metrics_json_records_every_metric(run_dir):
    metrics = metrics_of(run_dir)
    assert metrics["input_format"] == {"shape": [1, 28, 28]}
    for which in ("best", "last"):
        record = metrics[which]
        for field in ("test_error", "test_top5_error", "test_balanced_error", "test_macro_f1"):
            assert isinstance(record[field], float) and 0 <= record[field] <= 100, field
        # top-5 is a weaker criterion than top-1
        assert record["test_top5_error"] <= record["test_error"]


def test_evaluate_reproduces_metrics_json_exactly(run_dir, prepared_mnist, tmp_path, capsys):
    out = tmp_path / "evaluation.json"
    code = main(["evaluate", "--run", str(run_dir), "--data", str(prepared_mnist),
                 "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    metrics = metrics_of(run_dir)
    assert result["comparable"] is True
    for which in ("best", "last"):
        fields = {k: v for k, v in result[which].items() if k != "differs_from_metrics_json"}
        assert set(fields) == {"test_error", "test_top5_error", "test_balanced_error",
                               "test_macro_f1", "test_gmean_recall", "test_per_class_accuracy"}
        for key, value in fields.items():
            assert value == metrics[which][key], (which, key)  # exact, not approximate
        assert result[which]["differs_from_metrics_json"] == []
    assert "reproduces metrics.json" in capsys.readouterr().out


def test_evaluate_fails_when_the_checkpoint_changed(run_dir, prepared_mnist, tmp_path, capsys):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    state = torch.load(copy / "model_best.pt", weights_only=True)
    state["head.bias"] = state["head.bias"] + torch.linspace(-3, 3, len(state["head.bias"]))
    torch.save(state, copy / "model_best.pt")
    with pytest.raises(SystemExit, match="does not reproduce"):
        main(["evaluate", "--run", str(copy), "--data", str(prepared_mnist),
              "--checkpoint", "best"])
    assert "DIFFERS from metrics.json in test_error" in capsys.readouterr().out


def test_predict_images_as_csv(run_dir, images, prepared_mnist, tmp_path):
    folder, picked = images
    out = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(run_dir), "--input", str(folder), "--output", str(out),
                 "--top-k", "3"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["input"]).name for r in rows] == sorted(
        ["big_rgb.jpg", *(f"digit{i}.png" for i in picked)])
    assert set(rows[0]) == {"input", "class", "probability", "class_2", "probability_2",
                            "class_3", "probability_3"}

    # the probabilities are those of the model on the stored test samples through the eval
    # view: the file was turned into exactly what training evaluated
    run = semibench.load_run(run_dir)
    data = load_prepared(prepared_mnist)
    x = run.model.prepare_inputs(data.test_x[picked])
    logits = all_logits(run.model, x, run.view, batch_size=64, device=torch.device("cpu"),
                        autocast_dtype=None)
    expected = logits.softmax(-1)
    by_name = {Path(r["input"]).name: r for r in rows}
    for j, i in enumerate(picked):
        row = by_name[f"digit{i}.png"]
        assert row["class"] == run.classes[int(expected[j].argmax())]
        assert float(row["probability"]) == pytest.approx(float(expected[j].max()), abs=1e-6)
        probs = [float(row[k]) for k in ("probability", "probability_2", "probability_3")]
        assert probs == sorted(probs, reverse=True)


def test_load_run(run_dir, images):
    folder, _ = images
    run = semibench.load_run(run_dir)
    assert not run.model.training
    assert run.classes == [str(d) for d in range(10)] and run.domain == "image"
    files = [folder / "digit0.png", folder / "big_rgb.jpg"]
    batch = run.preprocess(files)
    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.float32
    # normalised with the task's mean/std, not raw pixels
    assert batch.min() < 0 < batch.max() < 10
    probs = run.predict_proba(files)
    assert probs.shape == (2, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    assert torch.equal(probs, run.model(batch).softmax(-1))
    # "last" loads model_last.pt: the weights saved at the end
    last = semibench.load_run(run_dir, checkpoint="last")
    saved = torch.load(run_dir / "model_last.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in last.model.state_dict().items())


def test_bad_inputs_are_one_line_errors(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert main(["predict", "--run", str(run_dir), "--input", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"semibench predict: error: {broken}: not a readable image")
    assert "\n" not in err

    assert main(["predict", "--run", str(tmp_path), "--input", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"semibench predict: error: {tmp_path / 'metrics.json'}: missing; is "
                   f"{tmp_path} a finished run directory "
                   "(results/<benchmark>/runs/<task>/<num_labels>/<algorithm>/seed<seed>)?")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--run", str(run_dir), "--input", str(empty)]) == 1
    assert f"{empty}: no image files" in capsys.readouterr().err

    no_weights = Path(shutil.copytree(run_dir, tmp_path / "no_weights"))
    (no_weights / "model_best.pt").unlink()
    assert main(["predict", "--run", str(no_weights), "--input", str(broken)]) == 1
    assert f"{no_weights / 'model_best.pt'}: missing" in capsys.readouterr().err


def _kept_only(run_dir: Path, where: Path, keep: str | None) -> Path:
    """A copy of ``run_dir`` as a run with ``train.keep_weights: keep`` leaves it (None: a run
    from before the setting, which kept both)."""
    from semibench.train.config import KEEP_WEIGHTS

    copy = Path(shutil.copytree(run_dir, where))
    metrics = metrics_of(copy)
    if keep is None:
        del metrics["keep_weights"]
    else:
        metrics["keep_weights"] = keep
        for name in {"best", "last"} - set(KEEP_WEIGHTS[keep]):
            (copy / f"model_{name}.pt").unlink()
    (copy / "metrics.json").write_text(json.dumps(metrics))
    return copy


def test_weights_a_run_did_not_keep_are_one_line(run_dir, prepared_mnist, images, tmp_path,
                                                 capsys):
    folder, _ = images
    best = _kept_only(run_dir, tmp_path / "best", "best")
    assert main(["predict", "--run", str(best), "--input", str(folder), "--checkpoint",
                 "last"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"semibench predict: error: {best / 'model_last.pt'}: not kept: the run was trained "
        "with train.keep_weights=best, which keeps model_best.pt; use --checkpoint best, or "
        "set train.keep_weights: both and retrain the run")
    assert main(["predict", "--run", str(best), "--input", str(folder)]) == 0
    capsys.readouterr()
    # evaluate checks what the run kept, unless told otherwise
    assert main(["evaluate", "--run", str(best), "--data", str(prepared_mnist)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("best: ") and "last:" not in out and "reproduces" in out
    assert main(["evaluate", "--run", str(best), "--data", str(prepared_mnist),
                 "--checkpoint", "best", "last"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"semibench evaluate: error: {best / 'model_last.pt'}: not kept")
    assert "\n" not in err

    none = _kept_only(run_dir, tmp_path / "none", "none")
    assert main(["predict", "--run", str(none), "--input", str(folder)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"semibench predict: error: {none / 'model_best.pt'}: not kept: the run was trained "
        "with train.keep_weights=none, which keeps no weights; set train.keep_weights: best "
        "and retrain the run")
    assert main(["evaluate", "--run", str(none), "--data", str(prepared_mnist)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"semibench evaluate: error: {none}: the run kept no weights (train.keep_weights="
        "none): nothing to evaluate; set train.keep_weights: best and retrain it")

    older = _kept_only(run_dir, tmp_path / "older", None)  # kept both, says nothing
    assert main(["evaluate", "--run", str(older), "--data", str(prepared_mnist)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("best: ") and "\nlast: " in out


def test_import_semibench_stays_light():
    code = "import sys, semibench; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_algorithm_heads_are_not_needed(prepared_mnist, tmp_path):
    """CoMatch saves its projection head with the model; evaluation and prediction use the
    classifier only, and still reproduce metrics.json."""
    data = load_prepared(prepared_mnist)
    split = tmp_path / "seed0.json"
    write_split(make_split(data.train_y, task="mnist", num_classes=10, num_labels=40,
                           val_per_class=20, seed=0), split)
    cfg = check_config({"algorithms": ["comatch"], "seeds": [0], "tasks": {"mnist": {
        "num_labels": [40], "train": {**TRAIN, "iterations": 4, "eval_every": 2}}}})
    out = tmp_path / "run"
    train_run(run_config(cfg, "mnist", 40, "comatch", 0), prepared_mnist, split, out)
    assert any(k.startswith("ssl_heads.") for k in torch.load(out / "model_best.pt",
                                                              weights_only=True))
    assert main(["evaluate", "--run", str(out), "--data", str(prepared_mnist)]) == 0


# --------------------------------------------------------------------------- other domains


def fake_run(root: Path, task: str, num_labels: int, model: torch.nn.Module,
             input_format: dict) -> Path:
    """A run directory as the trainer leaves it, with ``model``'s weights."""
    from semibench.metrics_file import write_metrics
    from semibench.tasks import create_task

    cfg = check_config({"algorithms": ["supervised"], "seeds": [0],
                        "tasks": {task: {"num_labels": [num_labels]}}})
    settings = run_config(cfg, task, num_labels, "supervised", 0)
    evaluation = {"iteration": 1, "val_error": 50.0, "test_error": 50.0}
    root.mkdir(parents=True)
    write_metrics(root / "metrics.json", {
        "task": task, "domain": create_task(task).domain, "num_labels": num_labels,
        "algorithm": "supervised", "seed": 0, "classes": list(create_task(task).classes),
        "input_format": input_format, "best": evaluation, "last": evaluation,
        "wall_time_s": 1.0, "device": "cpu", "config": settings})
    torch.save(model.state_dict(), root / "model_best.pt")
    return root


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((samples.T * 32767).astype("<i2").tobytes())


def test_predict_audio_files(tmp_path):
    """A stereo 8 kHz WAV becomes the keywords task's stored clip (mono, 16 kHz, 1 s) and goes
    through its log-mel eval view."""
    import torchaudio

    from semibench.backbones import create_backbone
    from semibench.tasks import create_task

    task = create_task("keywords")
    torch.manual_seed(0)
    model = create_backbone(task.backbone, task.num_classes, **task.backbone_args)
    rate, length = 16_000, 16_000
    run_dir = fake_run(tmp_path / "run", "keywords", 100, model,
                       {"sample_rate": rate, "num_samples": length})
    t = np.arange(4000) / 8000  # half a second at 8 kHz
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)
    write_wav(tmp_path / "clip.wav", np.stack([left, right]), 8000)

    run = semibench.load_run(run_dir)
    stored = run.to_stored([tmp_path / "clip.wav"])
    assert stored.shape == (1, length) and stored.dtype == np.float32
    mono = torch.as_tensor(((left + right) / 2 * 32767).astype(np.int16) / 32768,
                           dtype=torch.float32)  # what the 16-bit file holds, averaged
    expected = torchaudio.functional.resample(mono, 8000, rate).numpy()
    assert np.allclose(stored[0, : len(expected)], expected, atol=1e-3)
    assert not stored[0, 8000:].any()  # zero padding after the half second

    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path),
                 "--output", str(tmp_path / "p.csv")]) == 0
    row = next(csv.DictReader((tmp_path / "p.csv").open()))
    with torch.no_grad():
        probs = model.eval()(run.view(torch.as_tensor(stored), torch.Generator())).softmax(-1)[0]
    assert row["class"] == task.classes[int(probs.argmax())]
    assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-6)

    (tmp_path / "noise.wav").write_bytes(b"RIFF not really")  # skipped, as images are
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "clip.wav"),
                 str(tmp_path / "noise.wav"), "--output", str(tmp_path / "p.csv"),
                 "--skip-unreadable"]) == 0
    skipped = list(csv.DictReader((tmp_path / "p.skipped.csv").open()))
    assert [r["input"] for r in skipped] == [str(tmp_path / "noise.wav")]
    assert skipped[0]["reason"].startswith("not a readable audio file (")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """A newsgroups run directory (MiniLM, untrained head): text inputs."""
    from semibench.backbones import create_backbone
    from semibench.tasks import create_task

    task = create_task("newsgroups")
    cfg = check_config({"algorithms": ["supervised"], "tasks": {"newsgroups": {}}})
    settings = run_config(cfg, "newsgroups", 80, "supervised", 0)
    torch.manual_seed(0)
    model = create_backbone(settings["backbone"], task.num_classes, **settings["backbone_args"])
    return fake_run(tmp_path_factory.mktemp("text") / "run", "newsgroups", 80, model, {})


def test_predict_text_lines(text_run, tmp_path):
    """Each non-empty line of a text file is one input, tokenised as the task's texts are, and
    named by its line number in the file (empty lines counted)."""
    texts = ["The shuttle launch was delayed by the weather.",
             "Which graphics card runs this game?"]
    (tmp_path / "in.txt").write_text(f"{texts[0]}\n\n{texts[1]}\n", encoding="utf-8")
    assert main(["predict", "--run", str(text_run), "--input", str(tmp_path / "in.txt"),
                 "--output", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["input"] for r in rows] == [f"{tmp_path / 'in.txt'}:1", f"{tmp_path / 'in.txt'}:3"]
    run = semibench.load_run(text_run)
    classes = run.classes
    with torch.no_grad():
        probs = run.model(run.preprocess(texts)).softmax(-1)
    for row, p in zip(rows, probs, strict=True):
        assert row["class"] == classes[int(p.argmax())]
        assert float(row["probability"]) == pytest.approx(float(p.max()), abs=1e-5)


def test_text_line_numbers_are_the_files(tmp_path):
    """Numbered as an editor numbers lines: CRLF endings, a form feed inside a line and a byte
    order mark do not shift them (str.splitlines would split at the form feed)."""
    from semibench.inference import read_text_lines

    path = tmp_path / "posts.txt"
    path.write_bytes("\ufefffirst\r\n\r\n  \nsecond\x0cpart\r\n\nthird".encode())
    assert read_text_lines(path) == [(1, "first"), (4, "second\x0cpart"), (6, "third")]


def test_empty_text_input_is_an_error(text_run, tmp_path, capsys):
    empty = tmp_path / "posts.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(text_run), "--input", str(empty),
                 "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"semibench predict: error: nothing to predict in {empty}: no non-empty lines"
    assert not out.exists()


def test_a_folder_of_texts_says_what_it_ignores(text_run, tmp_path, capsys):
    folder = tmp_path / "posts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("one\n", encoding="utf-8")
    (folder / "sub" / "b.text").write_text("two\n", encoding="utf-8")
    (folder / "notes.md").write_text("# not read\n", encoding="utf-8")
    (folder / "table.csv").write_text("text,label\n", encoding="utf-8")
    (folder / "sub" / "more.csv").write_text("text,label\n", encoding="utf-8")
    (folder / ".hidden.txt").write_text("editor backup\n", encoding="utf-8")
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(text_run), "--input", str(folder),
                 "--output", str(out)]) == 0
    assert [r["input"] for r in csv.DictReader(out.open())] == [
        f"{folder / 'a.txt'}:1", f"{folder / 'sub' / 'b.text'}:1"]
    err = capsys.readouterr().err
    assert (f"{folder}: read 2 text file(s), ignored 3 other file(s) (.csv: 2, .md: 1)"
            in err)

    only_tables = tmp_path / "tables"
    only_tables.mkdir()
    (only_tables / "t.csv").write_text("text,label\n", encoding="utf-8")
    assert main(["predict", "--run", str(text_run), "--input", str(only_tables)]) == 1
    assert (f"{only_tables}: no text files (.txt, .text) in this folder; it has 1 other "
            "file(s) (.csv: 1)") in capsys.readouterr().err


def test_load_image_gives_the_stored_layout(tmp_path):
    """RGB files become uint8 [3, H, W] (channels first, as the prepared images), grey ones
    [1, H, W]; another size is resized to the stored one."""
    from semibench.inference import load_image

    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    stored = load_image(tmp_path / "rgb.png", [3, 4, 6])
    assert stored.shape == (3, 4, 6) and stored.dtype == np.uint8
    assert stored[:, 0, 0].tolist() == [10, 20, 30]
    assert load_image(tmp_path / "rgb.png", [3, 8, 8]).shape == (3, 8, 8)
    grey = load_image(tmp_path / "rgb.png", [1, 4, 6])
    assert grey.shape == (1, 4, 6)
    assert int(grey[0, 0, 0]) == round(10 * 0.299 + 20 * 0.587 + 30 * 0.114)  # PIL's "L"


# --------------------------------------------------------------------------- faults


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) >= 1
    return err[-1]


@pytest.fixture
def mixed_folder(images, tmp_path) -> tuple[Path, list[str]]:
    """Two good images, a file that is no image and a truncated PNG."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("digit0.png", "digit1.png"):
        shutil.copy(images[0] / name, folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    data = (images[0] / "big_rgb.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return folder, [str(folder / "broken.png"), str(folder / "cut.jpg")]


def test_an_unreadable_file_is_refused_naming_it_and_the_flag(run_dir, mixed_folder, capsys):
    folder, bad = mixed_folder
    assert main(["predict", "--run", str(run_dir), "--input", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"semibench predict: error: {bad[0]}: not a readable image (")
    assert err.endswith("; --skip-unreadable skips such files and lists them")


def test_skip_unreadable_lists_what_it_skipped(run_dir, mixed_folder, tmp_path, capsys):
    folder, bad = mixed_folder
    out = tmp_path / "preds.csv"
    assert main(["predict", "--run", str(run_dir), "--input", str(folder), "--output", str(out),
                 "--skip-unreadable"]) == 0
    assert [Path(r["input"]).name for r in csv.DictReader(out.open())] == [
        "digit0.png", "digit1.png"]
    listed = list(csv.DictReader((tmp_path / "preds.skipped.csv").open()))
    assert [r["input"] for r in listed] == bad
    assert all(r["reason"].startswith("not a readable image (") for r in listed)
    assert (f"semibench predict: skipped 2 unreadable file(s): {bad[0]}, {bad[1]}; every one "
            f"in {tmp_path / 'preds.skipped.csv'}") in capsys.readouterr().err

    # to standard output: the names on stderr only
    assert main(["predict", "--run", str(run_dir), "--input", str(folder),
                 "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert f"skipped 2 unreadable file(s): {bad[0]}, {bad[1]}\n" in captured.err

    # nothing readable: nothing to predict
    assert main(["predict", "--run", str(run_dir), "--input", *bad, "--skip-unreadable"]) == 1
    assert one_line_error(capsys) == (f"semibench predict: error: nothing to predict in "
                                      f"{bad[0]}, {bad[1]}: all 2 file(s) unreadable")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"hello world" * 10])
def test_a_corrupt_checkpoint_is_one_whole_line(run_dir, tmp_path, capsys, content):
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / "model_best.pt").write_bytes(content)
    assert main(["predict", "--run", str(copy), "--input", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"semibench predict: error: {copy / 'model_best.pt'}: ")
    assert err.endswith("copy it again from where the run trained, or retrain the run (its "
                        "other checkpoint, model_last.pt, may still load)")


def test_top_k_below_one_is_refused(run_dir, images, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--run", str(run_dir), "--input", str(images[0]), "--top-k", "0"])
    assert stop.value.code == 2
    assert "argument --top-k: 0: must be at least 1" in capsys.readouterr().err
    run = semibench.load_run(run_dir)
    with pytest.raises(SemiBenchError, match="top_k=0: must be at least 1"):
        run.predict([images[0] / "digit0.png"], top_k=0)


def test_top_k_above_the_classes_gives_all_of_them(run_dir, images, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(run_dir), "--input", str(images[0] / "digit0.png"),
                 "--output", str(out), "--top-k", "25"]) == 0
    row = next(csv.DictReader(out.open()))
    assert len(row) == 2 * 10 + 1 and sorted(row[k] for k in row if k.startswith("class")) == [
        str(d) for d in range(10)]
    assert ("--top-k 25: the model has 10 classes; giving all 10"
            in capsys.readouterr().err)


def test_load_run_takes_pil_images_and_arrays(run_dir, images):
    folder, _ = images
    run = semibench.load_run(run_dir)
    files = [folder / "digit0.png", folder / "big_rgb.jpg"]
    from_files = run.predict_proba(files)
    with Image.open(files[0]) as grey, Image.open(files[1]) as rgb:
        assert torch.equal(run.predict_proba([grey, rgb]), from_files)
    stored = run.to_stored(files)
    assert torch.equal(run.predict_proba(list(stored)), from_files)
    assert run.predict([grey_image(folder)], top_k=2)[0].input == "[0]"
    with pytest.raises(SemiBenchError,
                       match=r"\[0\]: shape \[28, 28\], the task stores \[1, 28, 28\]"):
        run.predict_proba([stored[0, 0]])
    with pytest.raises(SemiBenchError, match=r"\[0\]: float pixels"):
        run.predict_proba([stored[0] / 255.0])


def grey_image(folder: Path) -> Image.Image:
    with Image.open(folder / "digit1.png") as image:
        return image.copy()
