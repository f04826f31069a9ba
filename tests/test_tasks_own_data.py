"""Tasks from the user's own files (``from_files``): the example configs on tiny data that the
tests write, read as files from another working directory, the checks before anything runs
(one line each), the policies for samples of the same content, and the pipeline end to end."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from semibench.config import ConfigError, check_config, run_config, run_grid
from semibench.config_file import check_config_file
from semibench.io import sha256_file
from semibench.tasks import TASKS, create_task, load_prepared
from semibench.tasks import from_files as ff
from semibench.tasks._files import FileTaskError
from tests.helpers.own_data import COLOURS, TONES, write_images, write_sounds, write_texts
from tests.helpers.workflow import train_jobs, write

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "config" / "examples"


@pytest.fixture(autouse=True)
def _forget_declared_tasks():
    """A declared task lives in the process-wide registry; drop this test's ones afterwards."""
    yield
    for name in list(ff._DECLARED):
        del ff._DECLARED[name]
        TASKS.unregister(name)


WRITERS = {"images": (write_images, "my_data/flowers"), "text": (write_texts, "my_data/reviews"),
           "audio": (write_sounds, "my_data/sounds")}


def example(name: str) -> dict:
    """An example as a Python dict: its relative paths are read from the working directory."""
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The working directory (a config built in Python reads relative paths from it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fetch_and_prepare(name: str, root: Path) -> tuple:
    task = create_task(name)
    task.fetch(root / "raw" / name)
    task.prepare(root / "raw" / name, root / "prepared" / name)
    return task, load_prepared(root / "prepared" / name)


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- each domain


@pytest.mark.parametrize("name", ["images", "text", "audio"])
def test_example_config_prepares_its_domain_from_tiny_files(workdir, monkeypatch, name):
    """The example copied next to the data, as its comment says, and read from elsewhere."""
    writer, where = WRITERS[name]
    project = workdir / "project"
    writer(project / where)
    (project / f"{name}.yaml").write_text((EXAMPLES / f"{name}.yaml").read_text())
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    config, _ = check_config_file(Path("..") / "project" / f"{name}.yaml")
    [(task_name, settings)] = config["tasks"].items()
    assert run_grid(config) and settings["num_labels"] == [4]
    task, data = fetch_and_prepare(task_name, workdir)
    manifest = json.loads((workdir / "raw" / task_name / "manifest.json").read_text())
    assert data.meta["raw_checksums"] == {
        "manifest.json": sha256_file(workdir / "raw" / task_name / "manifest.json")}
    roots = manifest["roots"]  # where the files were read: absolute, under the config's folder
    assert all(Path(r).is_absolute() and Path(r).is_relative_to(project) for r in roots.values())
    for key, digest in manifest["files"].items():  # every file read, with its SHA-256
        role, _, rel = key.partition("/")
        path = Path(roots[role]) if name == "text" else Path(roots[role]) / rel
        assert sha256_file(path) == digest, key
    # the declaration is recorded as written (no checkout-dependent path), with its policies
    assert data.meta["from_files"] == manifest["declaration"]
    assert data.meta["from_files"]["train"] == example(name)["tasks"][task_name][
        "from_files"]["train"]
    default = "warn" if name == "text" else "refuse"
    assert data.meta["from_files"]["conflicting_labels"] == "refuse"
    assert data.meta["from_files"]["test_duplicates"] == default
    assert manifest["duplicates"]["test_duplicates"] == {"policy": default, "found": 0,
                                                         "dropped": []}
    assert data.meta["duplicates"]["conflicting_labels"] == {"policy": "refuse", "found": 0,
                                                             "dropped": 0}
    assert data.meta["domain"] == task.domain

    if name == "images":
        assert task.classes == ("daisy", "rose") and len(manifest["files"]) == 12 + 4 + 3
        assert manifest["ignored"] == ["train/daisy/notes.txt"]
        assert data.train_x.shape == (15, 3, 32, 32) and data.train_x.dtype == np.uint8
        assert data.test_x.shape == (4, 3, 32, 32)
        assert sorted(data.train_y.tolist()) == [-1] * 3 + [0] * 6 + [1] * 6
        assert data.test_y.tolist() == [0, 0, 1, 1]
        for x, y in zip(data.train_x, data.train_y, strict=True):
            if y >= 0:  # the class colour survives decoding and resizing, in RGB order
                assert np.abs(x.reshape(3, -1).mean(1) - COLOURS[task.classes[y]]).max() < 8
    elif name == "text":
        assert task.classes == ("neg", "pos")
        assert data.train_y.tolist() == [1] * 6 + [0] * 6 + [-1, -1]  # empty label: unlabelled
        assert data.test_x.tolist() == ["pretty great", "quite bad"]
        assert data.test_y.tolist() == [1, 0]
        assert len(data.train_x[0]) == 600  # max_chars
    else:
        assert task.classes == ("high", "low")
        assert data.meta["sample_rate"] == 16000
        assert data.train_x.shape == (12, 16000) and data.train_x.dtype == np.float32
        for x, y in zip(data.train_x, data.train_y, strict=True):
            sound = x[: 16000 * 3 // 10]  # every clip is at least 0.3 s long
            peak = np.fft.rfftfreq(len(sound), 1 / 16000)[np.abs(np.fft.rfft(sound)).argmax()]
            expected = TONES[task.classes[y]]
            assert abs(peak - expected) < 0.06 * expected  # resampled, not re-pitched
            assert np.all(x[int(16000 * 0.95):] == 0)  # every clip is shorter than 0.95 s


def test_test_fraction_holds_out_a_fixed_stratified_test_set(workdir):
    write_images(workdir / "d", train=10, test=0, unlabelled=2)
    config = {"algorithms": ["supervised"], "tasks": {"mine": {"num_labels": [2], "from_files": {
        "domain": "image", "train": "d/train", "unlabelled": "d/unlabelled",
        "test_fraction": 0.3, "val_per_class": 1, "image_size": 16, "channels": 1}}}}
    check_config(config)
    _, data = fetch_and_prepare("mine", workdir)
    assert data.test_y.tolist() == [0, 0, 0, 1, 1, 1] and data.test_x.shape == (6, 1, 16, 16)
    assert sorted(data.train_y.tolist()) == [-1, -1] + [0] * 7 + [1] * 7
    # the hold-out is fixed: preparing again gives the same test set
    create_task("mine").prepare(workdir / "raw" / "mine", workdir / "again")
    assert np.array_equal(load_prepared(workdir / "again").test_x, data.test_x)


def test_text_from_jsonl_and_tsv_with_an_unlabelled_table(workdir):
    rows = [{"body": f"good thing {i}", "y": 1} for i in range(5)]
    rows += [{"body": f"bad thing {i}", "y": 0} for i in range(5)] + [{"body": "?", "y": None}]
    (workdir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    (workdir / "test.tsv").write_text("body\ty\ngood, fine\t1\nbad \"thing\"\t0\n")
    (workdir / "more.csv").write_text("body\nno label at all\nnor here\n")
    config = {"algorithms": ["supervised"], "tasks": {"mine": {"num_labels": [4], "from_files": {
        "domain": "text", "train": "train.jsonl", "test": "test.tsv", "unlabelled": "more.csv",
        "text_column": "body", "label_column": "y", "val_per_class": 1}}}}
    check_config(config)
    task, data = fetch_and_prepare("mine", workdir)
    assert task.classes == ("0", "1")  # labels are names, whatever their JSON type
    assert data.train_y.tolist() == [1] * 5 + [0] * 5 + [-1, -1, -1]
    assert data.train_x[-2:].tolist() == ["no label at all", "nor here"]
    assert data.test_x.tolist() == ["good, fine", 'bad "thing"'] and data.test_y.tolist() == [1, 0]


def test_defaults_per_domain_are_overridable_the_usual_way(workdir):
    write_images(workdir / "my_data/flowers")
    write_texts(workdir / "my_data/reviews")
    config = example("images")
    config["tasks"].update(example("text")["tasks"])
    config["tasks"]["my_flowers"]["backbone_args"] = {"width": 8}
    config["tasks"]["my_flowers"]["augment"] = {"hflip": False}
    config = check_config(config)
    image = run_config(config, "my_flowers", 4, "fixmatch", 0)
    assert image["backbone"] == "cnn_small"
    assert image["backbone_args"] == {"in_chans": 3, "width": 8}
    assert image["augment"]["hflip"] is False and image["augment"]["crop_ratio"] == 0.875
    text = run_config(config, "my_reviews", 4, "fixmatch", 0)
    assert text["backbone"] == "minilm_l6"
    assert text["backbone_args"] == {"max_length": 32, "trainable_layers": 2}


# --------------------------------------------------------------------------- checks


def _image_config(**spec) -> dict:
    base = {"domain": "image", "train": "d/train", "test": "d/test", "val_per_class": 1}
    return {"algorithms": ["supervised"],
            "tasks": {"mine": {"num_labels": [4], "from_files": {**base, **spec}}}}


def _rename(src: str, dst: str):
    return lambda root: (root / src).rename(root / dst)


def _mkdir(path: str):
    return lambda root: (root / path).mkdir()


CONFIG_ERRORS = [
    ("missing train", lambda root: None, {"train": "d/nope"},
     "tasks.mine.from_files.train='d/nope': no such folder"),
    ("missing unlabelled", lambda root: None, {"unlabelled": "d/nothing"},
     "tasks.mine.from_files.unlabelled='d/nothing': no such folder"),
    ("test class not in train", _rename("test/rose", "test/tulip"), {},
     "tasks.mine.from_files.test: class(es) tulip are not in train"),
    ("empty class folder", _mkdir("train/tulip"), {},
     "tasks.mine.from_files.train: empty class folder(s) tulip"),
    ("too few per class", lambda root: None, {"val_per_class": 4},
     "tasks.mine.num_labels[0]=4: class 'daisy' has 6 labelled training samples; "
     "4 validation + 2 labelled + 1 unlabelled need 7 (2 classes are short)"),
    ("a key of another domain", lambda root: None, {"text_column": "body"},
     "tasks.mine.from_files.text_column: only for domain text, not image"),
    ("classes that do not match", lambda root: None, {"classes": ["daisy", "rose", "tulip"]},
     "tasks.mine.from_files.classes: tulip have no labelled training samples"),
    ("a file outside the class folders", lambda root: (root / "train/x.png").write_bytes(b""),
     {}, "tasks.mine.from_files.train: 1 file(s) outside a class folder (x.png)"),
    ("test and test_fraction", lambda root: None, {"test_fraction": 0.2},
     "give test (a folder) or test_fraction"),
]


@pytest.mark.parametrize("what, change, spec, message", CONFIG_ERRORS,
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_declarations_fail_the_config_check_in_one_line(workdir, what, change, spec, message):
    write_images(workdir / "d")
    change(workdir / "d")
    with pytest.raises(ConfigError) as err:
        check_config(_image_config(**spec))
    assert message in one_line(err.value)


def test_a_builtin_name_and_a_bad_name_are_refused(workdir):
    write_images(workdir / "d")
    config = _image_config()
    config["tasks"] = {"mnist": config["tasks"]["mine"]}
    with pytest.raises(ConfigError, match="'mnist' is a built-in task; give yours another name"):
        check_config(config)
    config["tasks"] = {"My-Flowers": config["tasks"]["mnist"]}
    with pytest.raises(ConfigError, match="must be lower-case letters, digits and _"):
        check_config(config)


def test_text_table_errors_are_one_line(workdir):
    write_texts(workdir / "r")
    spec = {"domain": "text", "train": "r/train.csv", "test": "r/test.csv", "val_per_class": 1}
    cases = [
        ({"text_column": "body"}, "has no column 'body' (text_column); it has: text, label"),
        ({"train": "r/train.xlsx"}, "no such file"),
        ({"test": "r/unlabelled_test.csv"}, "r/unlabelled_test.csv:3: a test row without a label"),
    ]
    (workdir / "r/unlabelled_test.csv").write_text("text,label\nfine,pos\nno label here,\n")
    for change, message in cases:
        config = {"algorithms": ["supervised"],
                  "tasks": {"mine": {"num_labels": [2], "from_files": {**spec, **change}}}}
        with pytest.raises(ConfigError) as err:
            check_config(config)
        assert message.split(":")[-1].strip() in one_line(err.value), err.value


def test_fetch_refuses_a_test_file_that_is_also_in_train(workdir):
    write_images(workdir / "d")
    (workdir / "d/test/rose/copy.png").write_bytes((workdir / "d/train/rose/train0.png").read_bytes())
    check_config(_image_config())
    with pytest.raises(FileTaskError) as err:
        create_task("mine").fetch(workdir / "raw")
    assert ("1 test files are also in train or unlabelled (same content): "
            "test/rose/copy.png = train/rose/train0.png") in one_line(err.value)
    assert not (workdir / "raw/manifest.json").exists()


# --------------------------------------------------------------------------- same content


def _texts_with_copies(root: Path, **policies) -> dict:
    """write_texts plus a training text under the other class and a test text in train."""
    write_texts(root)
    with open(root / "train.csv", "a") as handle:
        handle.write("what a  great film,neg\n")  # line 16: line 3's text (spaces normalised)
        handle.write("quite bad,neg\n")  # line 17: a test row's text
    spec = {"domain": "text", "train": "r/train.csv", "test": "r/test.csv", "val_per_class": 1,
            **policies}
    return {"algorithms": ["supervised"], "tasks": {"mine": {"num_labels": [2],
                                                             "from_files": spec}}}


def _fetched(workdir: Path) -> tuple:
    task, data = fetch_and_prepare("mine", workdir)
    manifest = json.loads((workdir / "raw/mine/manifest.json").read_text())
    return data, manifest["duplicates"]


def test_conflicting_labels_refuse_by_default_naming_the_way_forward(workdir):
    check_config(_texts_with_copies(workdir / "r"))
    with pytest.raises(FileTaskError) as err:
        create_task("mine").fetch(workdir / "raw/mine")
    assert one_line(err.value) == (
        "tasks.mine.from_files.train: 1 rows appear under two classes (same content): "
        "train.csv:3 (pos) = train.csv:16 (neg); correct their labels, or set "
        "tasks.mine.from_files.conflicting_labels: drop (leave out every copy) or first (keep "
        "the first one's label)")
    assert not (workdir / "raw/mine/manifest.json").exists()


@pytest.mark.parametrize("policy, dropped, kept", [
    ("drop", ["train/3", "train/16"], []),  # in the listing's order
    ("first", ["train/16"], [("what a great film", 1)]),
])
def test_conflicting_labels_drop_or_first_are_recorded(workdir, policy, dropped, kept):
    check_config(_texts_with_copies(workdir / "r", conflicting_labels=policy))
    data, duplicates = _fetched(workdir)
    assert duplicates["conflicting_labels"] == {"policy": policy, "found": 1, "dropped": dropped}
    assert data.meta["from_files"]["conflicting_labels"] == policy
    assert data.meta["duplicates"]["conflicting_labels"] == {"policy": policy, "found": 1,
                                                             "dropped": len(dropped)}
    copies = [(x, int(y)) for x, y in zip(data.train_x.tolist(), data.train_y, strict=True)
              if " ".join(x.split()) == "what a great film"]
    assert copies == kept
    assert len(data.train_y) == 16 - len(dropped)


@pytest.mark.parametrize("policy, test_texts", [("warn", ["pretty great", "quite bad"]),
                                                ("drop", ["pretty great"])])
def test_text_test_duplicates_warn_by_default_or_drop(workdir, caplog, policy, test_texts):
    spec = {} if policy == "warn" else {"test_duplicates": policy}
    check_config(_texts_with_copies(workdir / "r", conflicting_labels="first", **spec))
    data, duplicates = _fetched(workdir)
    assert data.test_x.tolist() == test_texts
    assert duplicates["test_duplicates"] == {
        "policy": policy, "found": 1, "dropped": ["test/3"] if policy == "drop" else []}
    assert data.meta["from_files"]["test_duplicates"] == policy
    message = ("1 test rows are also in train or unlabelled (same content): "
               "test.csv:3 = train.csv:17")
    assert any(message in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_text_test_duplicates_refuse(workdir):
    check_config(_texts_with_copies(workdir / "r", conflicting_labels="drop",
                                    test_duplicates="refuse"))
    with pytest.raises(FileTaskError) as err:
        create_task("mine").fetch(workdir / "raw/mine")
    assert one_line(err.value).endswith(
        "test.csv:3 = train.csv:17; remove them from one side, or set "
        "tasks.mine.from_files.test_duplicates: drop (leave them out of test) or warn (keep "
        "them)")


@pytest.mark.parametrize("policy", ["refuse", "drop", "first"])
def test_an_image_under_two_classes(workdir, policy):
    write_images(workdir / "d")
    copy = workdir / "d/train/daisy/copy.png"
    copy.write_bytes((workdir / "d/train/rose/train0.png").read_bytes())
    check_config(_image_config(**({} if policy == "refuse" else {"conflicting_labels": policy})))
    if policy == "refuse":
        with pytest.raises(FileTaskError, match=r"1 files appear under two classes \(same "
                           r"content\): train/daisy/copy.png \(daisy\) = train/rose/train0.png "
                           r"\(rose\); correct their labels"):
            create_task("mine").fetch(workdir / "raw/mine")
        return
    data, duplicates = _fetched(workdir)
    dropped = {"drop": ["train/daisy/copy.png", "train/rose/train0.png"],
               "first": ["train/rose/train0.png"]}[policy]  # daisy/ sorts first
    assert duplicates["conflicting_labels"] == {"policy": policy, "found": 1, "dropped": dropped}
    counts = data.meta["train_class_counts"]
    assert counts == ([6, 5] if policy == "drop" else [7, 5])


@pytest.mark.parametrize("policy, num_test", [("warn", 4), ("drop", 3)])
def test_an_image_in_train_and_test_kept_or_dropped(workdir, caplog, policy, num_test):
    write_images(workdir / "d")
    (workdir / "d/test/rose/copy.png").write_bytes(
        (workdir / "d/train/rose/train0.png").read_bytes())
    (workdir / "d/test/rose/test1.jpg").unlink()
    check_config(_image_config(test_duplicates=policy))
    data, duplicates = _fetched(workdir)
    assert len(data.test_y) == num_test
    assert duplicates["test_duplicates"] == {
        "policy": policy, "found": 1,
        "dropped": ["test/rose/copy.png"] if policy == "drop" else []}
    assert any("test/rose/copy.png = train/rose/train0.png" in r.getMessage()
               for r in caplog.records)


def test_policies_are_checked_in_one_line(workdir):
    write_images(workdir / "d")
    with pytest.raises(ConfigError) as err:
        check_config(_image_config(conflicting_labels="maybe"))
    assert one_line(err.value) == ("tasks.mine.from_files.conflicting_labels='maybe': allowed "
                                   "values: refuse, drop, first")
    with pytest.raises(ConfigError) as err:
        check_config(_image_config(test_duplicates="ignore"))
    assert "test_duplicates='ignore': allowed values: warn, drop, refuse" in one_line(err.value)
    # the jobs get no schema: the declaration checks the values itself
    with pytest.raises(FileTaskError, match="w.test_duplicates='ignore': allowed values: warn"):
        ff.FileSource.from_dict({"domain": "text", "train": "t.csv",
                                 "test_duplicates": "ignore"}, "w")


def test_prepare_names_unreadable_files_with_a_count(workdir):
    write_images(workdir / "d")
    (workdir / "d/train/rose/broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    data = (workdir / "d/test/daisy/test0.png").read_bytes()
    (workdir / "d/test/daisy/test0.png").write_bytes(data[: len(data) // 2])  # truncated
    check_config(_image_config())
    task = create_task("mine")
    task.fetch(workdir / "raw")
    with pytest.raises(FileTaskError) as err:
        task.prepare(workdir / "raw", workdir / "prepared")
    message = one_line(err.value)
    assert "2 of 17 files could not be read: " in message  # 12 + 1 train, 4 test
    assert "broken.jpg (UnidentifiedImageError: cannot identify image file)" in message
    assert "test/daisy/test0.png (" in message and "train/rose/broken.jpg (" in message
    assert not (workdir / "prepared/data.npz").exists()


def test_prepare_refuses_files_changed_since_fetch(workdir):
    write_images(workdir / "d")
    check_config(_image_config())
    task = create_task("mine")
    task.fetch(workdir / "raw")
    image = workdir / "d/train/rose/train2.bmp"
    Image.new("RGB", (8, 8)).save(image)
    with pytest.raises(FileTaskError, match="train/rose/train2.bmp changed since fetch; fetch it"):
        task.prepare(workdir / "raw", workdir / "prepared")
    image.unlink()
    with pytest.raises(FileTaskError, match=r"the files changed since fetch \(0 added, 1 removed"):
        task.prepare(workdir / "raw", workdir / "prepared")


def test_semibench_jobs_read_the_declarations_the_workflow_hands_them(workdir):
    """`semibench fetch/prepare/split` get no config: the workflow exports the declarations,
    with the absolute folder their relative paths are read from (the jobs run elsewhere)."""
    write_sounds(workdir / "my_data/sounds")
    config = check_config(example("audio"))
    handed = json.loads(ff.file_tasks_environment(config["tasks"]))
    assert handed["my_sounds"] == {"from_files": example("audio")["tasks"]["my_sounds"][
        "from_files"], "base": str(workdir.resolve())}
    env = {**os.environ, ff.FILE_TASKS_ENV: ff.file_tasks_environment(config["tasks"]),
           "OMP_NUM_THREADS": "1"}
    jobs = workdir / "jobs"
    jobs.mkdir()
    steps = [["fetch", "--task", "my_sounds", "--raw-dir", "raw"],
             ["prepare", "--task", "my_sounds", "--raw-dir", "raw", "--out-dir", "prep"],
             ["split", "--task", "my_sounds", "--prepared", "prep", "--num-labels", "4",
              "--seed", "0", "--out", "split.json"]]
    for step in steps:
        run = subprocess.run([sys.executable, "-m", "semibench.cli", *step], env=env, cwd=jobs,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
    split = json.loads((jobs / "split.json").read_text())
    assert len(split["labelled"]) == 4 and len(split["validation"]) == 4
    without = {k: v for k, v in env.items() if k != ff.FILE_TASKS_ENV}
    run = subprocess.run([sys.executable, "-m", "semibench.cli", *steps[0]], env=without,
                         cwd=jobs, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "unknown task 'my_sounds'" in run.stderr


# --------------------------------------------------------------------------- pipeline

@pytest.mark.slow
@pytest.mark.xdist_group("combined_pipeline")
def test_pipeline_on_an_image_folder_task_with_a_plugin_algorithm(combined_pipeline):
    """The session's pipeline (tests/helpers/pipeline.py) has ``my_flowers``, an ImageFolder
    task, trained by supervised, FixMatch and the example plugin ``confmatch``."""
    p = combined_pipeline
    assert "rule fetch_files:" in p.run.stdout + p.run.stderr
    meta = json.loads((p.workdir / "data/prepared/my_flowers/meta.json").read_text())
    assert meta["classes"] == ["daisy", "rose"] and meta["num_train"] == 15
    for alg in ("supervised", "fixmatch", "confmatch"):
        metrics = json.loads(p.results(f"runs/my_flowers/4/{alg}/seed0/metrics.json").read_text())
        assert metrics["algorithm"] == alg and metrics["task"] == "my_flowers"
        assert metrics["last"]["iteration"] == 4 and metrics["classes"] == ["daisy", "rose"]
    html = (p.workdir / "reports/combined/index.html").read_text()
    assert "my_flowers" in html and "confmatch" in html

    # an edited plugin reruns its own jobs only (one per seed)
    edited = p.workdir / "lab/confmatch.py"
    original = edited.read_text()
    try:
        edited.write_text(original.replace("0.5, \"confidence", "0.6, \"confidence"))
        dry = p.dry_run()
    finally:
        edited.write_text(original)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0 and "confmatch/seed0/metrics.json" in out
    assert re.search(r"^train\s+2$", out, re.M), out  # the job stats: confmatch, two seeds
    assert {j[1] for j in train_jobs(out)} == {"confmatch"}

    again = p.dry_run()
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    # a changed declaration, or a new image in a class folder, fetches the task again
    changed = copy.deepcopy(p.config)
    changed["tasks"]["my_flowers"]["from_files"]["image_size"] = 24
    dry = p.dry_run(write(p.workdir / "changed_flowers.yaml", changed))
    assert dry.returncode == 0 and "rule fetch_files:" in dry.stdout + dry.stderr
    new = p.workdir / "my_data/flowers/train/rose/new.png"
    try:
        Image.new("RGB", (9, 9), (0, 0, 255)).save(new)
        dry = p.dry_run()
    finally:
        new.unlink()
    assert dry.returncode == 0 and "rule fetch_files:" in dry.stdout + dry.stderr
