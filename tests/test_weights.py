"""Pretrained weights are looked for before anything runs: every missing file of every task in
one line with where it goes, on the file system only (fake caches here, nothing downloads)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from semibench.backbones import create_backbone
from semibench.backbones.base import required_weights
from semibench.cli import main
from semibench.config import ConfigError, check_config, check_weights, weights_needed
from semibench.weights import MissingWeightsError

REPO = Path(__file__).resolve().parents[1]
USB_BACKBONES = ["vit_small_patch2_32", "vit_base_patch16_96", "vit_tiny_patch2_32",
                 "vit_small_patch16_224", "bert_base_uncased", "wav2vec2_base", "hubert_base"]
OPUS_MT = ["Helsinki-NLP/opus-mt-en-de", "Helsinki-NLP/opus-mt-de-en",
           "Helsinki-NLP/opus-mt-en-ru", "Helsinki-NLP/opus-mt-ru-en"]


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty weight locations: the hub cache under $HF_HOME, USB's ViT files in
    $SEMIBENCH_WEIGHTS, and an offline hub (as on a compute node)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("SEMIBENCH_WEIGHTS", str(tmp_path / "vit"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return {"hub": tmp_path / "hf" / "hub", "vit": tmp_path / "vit"}


def put_in_hub(hub: Path, repo: str, *files: str) -> None:
    """A model in the hub cache's layout (refs/main -> snapshots/<commit>/)."""
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("0123abc")
    for name in files:
        path = root / "snapshots" / "0123abc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def usb() -> dict:
    return yaml.safe_load((REPO / "config" / "usb.yaml").read_text())


def test_usb_config_lists_every_missing_model_of_every_task_in_one_line(caches) -> None:
    with pytest.raises(ConfigError) as err:
        check_config(usb(), weights="error")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("11 sets of pretrained weights missing")
    for name in [*USB_BACKBONES, *OPUS_MT]:
        assert name in text
    assert "bert_base_uncased (tasks imdb, ag_news, amazon_review, yahoo_answers, " \
           "yelp_review): google-bert/bert-base-uncased is not in the local Hugging Face " \
           f"cache {caches['hub']}" in text
    assert f"vit_tiny_patch2_32 (tasks tissuemnist): vit_tiny_patch2_32_mlp_im_1k_32.pth not " \
           f"in {caches['vit']} (from $SEMIBENCH_WEIGHTS); download https://" in text
    assert "`hf download facebook/hubert-base-ls960`" in text
    assert "semibench check-config --weights warn" in text


def test_usb_config_passes_once_the_files_are_there(caches) -> None:
    caches["vit"].mkdir()
    for file in ("vit_small_patch2_32_mlp_im_1k_32.pth", "mae_pretrain_vit_base.pth",
                 "vit_tiny_patch2_32_mlp_im_1k_32.pth", "vit_small_patch16_224_mlp_im_1k_224.pth"):
        (caches["vit"] / file).write_bytes(b"")
    for repo in ["google-bert/bert-base-uncased", "facebook/hubert-base-ls960",
                 "facebook/wav2vec2-base-960h", *OPUS_MT]:
        put_in_hub(caches["hub"], repo, "config.json", "model.safetensors", "vocab.txt")
    assert check_config(usb(), weights="error")["benchmark"] == "usb"


def test_a_missing_weights_file_is_named_not_just_the_model(caches) -> None:
    put_in_hub(caches["hub"], "facebook/hubert-base-ls960", "config.json")  # no weights
    config = {"algorithms": ["fixmatch"], "seeds": [0], "tasks": {"esc50": {}}}
    with pytest.raises(ConfigError, match="hubert_base .tasks esc50.: model.safetensors or "
                                          "pytorch_model.bin of facebook/hubert-base-ls960 not "
                                          "in the local Hugging Face cache"):
        check_config(config, weights="error")


def test_the_offline_default_and_random_weights_need_no_file(caches, capsys) -> None:
    assert main(["check-config", str(REPO / "config" / "config.yaml")]) == 0
    assert "valid; 28 training runs" in capsys.readouterr().out
    config = {"algorithms": ["fixmatch"], "seeds": [0], "tasks": {
        "cifar100": {"backbone_args": {"pretrained": False}},
        "esc50": {"backbone_args": {"pretrained": False}},
        "eurosat": {"backbone": "timm/resnet18", "backbone_args": {"weights": "none"}},
        "mnist": {}}}
    checked = check_config(config, weights="error")
    assert weights_needed(checked) == []


def test_random_bert_still_needs_its_tokenizer(caches) -> None:
    config = {"algorithms": ["fixmatch"], "seeds": [0],
              "backtranslation": {"fallback": "token-edit"},
              "tasks": {"ag_news": {"backbone_args": {"pretrained": False}}}}
    with pytest.raises(ConfigError, match="vocab.txt or tokenizer.json of google-bert/"
                                          ".*random weights still take .*tokenizer_dir"):
        check_config(config, weights="error")
    put_in_hub(caches["hub"], "bert-base-uncased", "vocab.txt")  # the old id serves too
    check_config(config, weights="error")


def test_timm_cache_weights_are_looked_up_by_the_models_pretrained_tag(caches) -> None:
    config = {"algorithms": ["fixmatch"], "seeds": [0],
              "tasks": {"cifar10": {"backbone": "timm/resnet18"}}}
    with pytest.raises(ConfigError, match=r"timm/resnet18 \(tasks cifar10\): model.safetensors "
                                          r"or pytorch_model.bin of timm/resnet18.a1_in1k not "
                                          r".*`hf download timm/resnet18.a1_in1k`"):
        check_config(config, weights="error")
    put_in_hub(caches["hub"], "timm/resnet18.a1_in1k", "model.safetensors")
    check_config(config, weights="error")
    config["tasks"]["cifar10"]["backbone_args"] = {"weights": str(caches["vit"] / "r18.pth")}
    with pytest.raises(ConfigError, match=f"r18.pth not in {caches['vit']}"):
        check_config(config, weights="error")


def test_warn_logs_a_line_per_missing_set_and_skip_does_not_look(caches, caplog) -> None:
    logger = logging.getLogger("semibench.config")  # the CLI's handler may stop propagation
    logger.addHandler(caplog.handler)
    try:
        checked = check_config(usb(), weights="warn")
    finally:
        logger.removeHandler(caplog.handler)
    lines = {r.getMessage() for r in caplog.records if "missing pretrained" in r.getMessage()}
    assert len(lines) == 11 and all("\n" not in line for line in lines)
    assert check_weights(checked, "skip") == []
    with pytest.raises(ValueError, match="allowed: error, warn, skip"):
        check_config(usb(), weights="fail")


def test_cli_check_config_fails_by_default_and_warns_on_request(caches, capsys) -> None:
    config = str(REPO / "config" / "usb.yaml")
    with pytest.raises(SystemExit) as err:
        main(["check-config", config])
    assert str(err.value).startswith(f"semibench check-config: error: {config}: 11 sets of "
                                     "pretrained weights missing")
    assert main(["check-config", "--weights", "warn", config]) == 0
    out, errors = capsys.readouterr()
    assert "valid; 1596 training runs" in out
    assert errors.count("warning: missing pretrained weights: ") == 11


def test_the_train_job_fails_with_the_config_checks_line(caches) -> None:
    """create_backbone (the train job, predict) looks before it builds: the same line."""
    config = {"algorithms": ["fixmatch"], "seeds": [0], "tasks": {"stl10": {}}}
    with pytest.raises(ConfigError) as checked:
        check_config(config, weights="error")
    with pytest.raises(MissingWeightsError) as built:
        create_backbone("vit_base_patch16_96", 10)
    item = str(built.value).split(": ", 1)[1].replace("vit_base_patch16_96: ", "", 1)
    assert item in str(checked.value)
    assert isinstance(built.value, FileNotFoundError)


def test_a_plugin_backbone_declares_its_files(caches, tmp_path) -> None:
    from semibench import plugins

    source = tmp_path / "my_backbone.py"
    source.write_text(
        "from semibench.backbones.base import BACKBONES, declare_weights\n"
        "from semibench.backbones.cnn import SmallCNN\n"
        "from semibench.weights import Weights\n\n"
        "def files(name, args):\n"
        "    return [Weights(name, (('encoder.pt',),), directory=args.get('where', 'w'),\n"
        "                    fix='copy encoder.pt there')]\n\n"
        "@BACKBONES.register('weights_test_net')\n"
        "@declare_weights(files)\n"
        "def weights_test_net(num_classes, where='w', **kwargs):\n"
        "    return SmallCNN(num_classes, **kwargs)\n")
    plugins.load(str(source))
    (w,) = required_weights("weights_test_net", {"where": str(tmp_path)})
    assert w.missing() == ["encoder.pt"]
    with pytest.raises(MissingWeightsError, match=f"encoder.pt not in {tmp_path}; copy"):
        create_backbone("weights_test_net", 2, where=str(tmp_path))
    (tmp_path / "encoder.pt").write_bytes(b"")
    assert create_backbone("weights_test_net", 2, where=str(tmp_path)).head.out_features == 2
