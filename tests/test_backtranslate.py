"""Back-translation with tiny, randomly initialised Marian models built here (no download):
aligned outputs, caching and resumption, the token-edit fallback marker and missing models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from semibench import backtranslate as bt
from semibench.backtranslate import (
    METHOD_FALLBACK,
    METHOD_MARIAN,
    MODELS,
    ModelsUnavailableError,
    Settings,
    attach_backtranslations,
    backtranslate_task,
    source_text,
)
from semibench.cli import main
from semibench.tasks.base import Task, load_prepared, write_prepared

WORDS = ["the", "a", "movie", "film", "good", "bad", "great", "is", "was", "not", "very", "and", "plot", "actor"]
TEXTS = [
    "the movie was very good",
    "",  # an empty text stays empty
    "bad plot and a bad actor " * 30,  # longer than max_chars: only its tail is translated
    "great film",
    "the actor is not good",
    "a very bad movie",
    "good good good",
    "the plot was great and the film was good",
    "not a film",
]
SETTINGS = Settings(batch_size=3, chunk_size=4, max_new_tokens=6, max_input_tokens=24,
                    max_chars=80)


class ToyText(Task):
    name = "toy_text"
    domain = "text"
    classes = ("neg", "pos")
    label_budgets = (2,)
    val_per_class = 1
    backbone = "minilm_l6"
    source = "test fixture"
    train: ClassVar[dict] = {}

    def fetch(self, raw_dir: Path) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:  # pragma: no cover
        raise NotImplementedError


def save_tiny_marian(path: Path, seed: int) -> None:
    """A 1-layer Marian model and a word-level fast tokenizer, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["</s>", "<unk>", "<pad>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", 0)])
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>").save_pretrained(path)
    config = MarianConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=2, eos_token_id=0,
        decoder_start_token_id=2, forced_eos_token_id=0,
    )
    torch.manual_seed(seed)
    MarianMTModel(config).save_pretrained(path)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    names = [name for pair in MODELS.values() for name in pair]
    for i, name in enumerate(names):
        save_tiny_marian(root / name, seed=i)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    y = np.arange(len(TEXTS)) % 2
    write_prepared(out, task=ToyText(), train_x=np.array(TEXTS, dtype=np.str_), train_y=y,
                   test_x=np.array(TEXTS[:2], dtype=np.str_), test_y=y[:2], raw_checksums={})
    return out


@pytest.fixture(scope="module")
def translated(prepared: Path, weights_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bt") / "toy_text"
    backtranslate_task(prepared, out, settings=SETTINGS, weights_dir=weights_dir, device="cpu")
    return out


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_outputs_are_aligned(translated: Path, prepared: Path) -> None:
    out = read_npz(translated / "backtranslations.npz")
    table = out["texts"]
    assert table.dtype.kind == "U" and table.shape == (len(TEXTS), 3)
    assert table[:, 0].tolist() == TEXTS
    assert out["columns"].tolist() == ["original", "bt_de", "bt_ru"]
    assert str(out["method"]) == METHOD_MARIAN
    meta = load_prepared(prepared).meta
    assert str(out["source_data_sha256"]) == meta["data_sha256"]
    # the random models emit words of their vocabulary; the empty text stays empty
    assert table[1, 1] == table[1, 2] == ""
    produced = " ".join(table[:, 1:].ravel()).split()
    assert produced and set(produced) <= set(WORDS)
    assert not (translated / "chunks").exists()  # removed once the output is complete
    info = json.loads((translated / "info.json").read_text())
    assert info["method"] == METHOD_MARIAN and info["fallback"] is False
    assert info["num_texts"] == len(TEXTS) and info["columns"] == ["original", "bt_de", "bt_ru"]
    assert info["models"]["ru"] == ["Helsinki-NLP/opus-mt-en-ru", "Helsinki-NLP/opus-mt-ru-en"]
    assert info["settings"]["temperature"] == 0.9


def test_the_train_step_receives_three_columns(translated: Path, prepared: Path) -> None:
    data = attach_backtranslations(load_prepared(prepared), translated / "backtranslations.npz")
    assert data.train_x.shape == (len(TEXTS), 3)
    assert data.train_x[:, 0].tolist() == TEXTS
    other = load_prepared(prepared)
    other.meta["data_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="made from other prepared data"):
        attach_backtranslations(other, translated / "backtranslations.npz")


def test_reproducible_cached_and_resumable(translated: Path, prepared: Path, weights_dir: Path,
                                           tmp_path: Path, monkeypatch) -> None:
    expected = read_npz(translated / "backtranslations.npz")["texts"]
    # an up-to-date output is reused without loading a model
    monkeypatch.setattr(bt, "load_translators", lambda *a, **k: pytest.fail("re-translated"))
    backtranslate_task(prepared, translated, settings=SETTINGS, weights_dir=weights_dir)
    monkeypatch.undo()

    # a run killed after a few batches resumes from its saved chunks, with the same result
    calls = {"n": 0}
    original = bt.Translator.translate

    def dying(self, texts, settings, seed):
        calls["n"] += 1
        if calls["n"] == 7:  # de: 3 chunks x 2 directions done; die in the first ru chunk
            raise KeyboardInterrupt
        return original(self, texts, settings, seed)

    monkeypatch.setattr(bt.Translator, "translate", dying)
    out = tmp_path / "bt"
    with pytest.raises(KeyboardInterrupt):
        backtranslate_task(prepared, out, settings=SETTINGS, weights_dir=weights_dir,
                           device="cpu")
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [
        "de-0000000000.npz", "de-0000000004.npz", "de-0000000008.npz"]
    assert not (out / "backtranslations.npz").exists()
    calls["n"] = -100
    backtranslate_task(prepared, out, settings=SETTINGS, weights_dir=weights_dir, device="cpu")
    assert calls["n"] == -100 + 6  # only the 3 ru chunks were translated again
    assert np.array_equal(read_npz(out / "backtranslations.npz")["texts"], expected)

    # another seed samples other translations
    other = tmp_path / "seed1"
    backtranslate_task(prepared, other, settings=Settings(**{**SETTINGS.__dict__, "seed": 1}),
                       weights_dir=weights_dir, device="cpu")
    assert not np.array_equal(read_npz(other / "backtranslations.npz")["texts"], expected)


def test_missing_models_give_a_clear_error(prepared: Path, tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(ModelsUnavailableError) as err:
        backtranslate_task(prepared, tmp_path / "bt", settings=SETTINGS, weights_dir=empty)
    message = str(err.value)
    for name in ("opus-mt-en-de", "opus-mt-de-en", "opus-mt-en-ru", "opus-mt-ru-en"):
        assert f"Helsinki-NLP/{name}: no model in {empty}/Helsinki-NLP/{name}" in message
    assert "hf download Helsinki-NLP/opus-mt-en-de --local-dir" in message
    assert not (tmp_path / "bt" / "backtranslations.npz").exists()
    # from the hub cache, offline
    with pytest.raises(ModelsUnavailableError, match=f"opus-mt-en-de: cannot load it from the "
                       f"Hugging Face cache {tmp_path / 'hub'}"):
        bt.load_translator("Helsinki-NLP/opus-mt-en-de", cache_dir=tmp_path / "hub", offline=True)


def test_fallback_writes_the_marker(prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "bt"
    info = backtranslate_task(prepared, out, settings=SETTINGS, weights_dir=tmp_path / "none",
                              fallback="token-edit")
    assert info["method"] == METHOD_FALLBACK and info["fallback"] is True
    assert "opus-mt-en-de" in info["reason"]
    saved = json.loads((out / "info.json").read_text())
    assert saved["method"] == METHOD_FALLBACK and saved["reason"] == info["reason"]
    npz = read_npz(out / "backtranslations.npz")
    assert str(npz["method"]) == METHOD_FALLBACK
    assert npz["texts"].shape == (len(TEXTS), 1) and npz["texts"][:, 0].tolist() == TEXTS
    # training then keeps [N] texts: the token-edit stand-in is the strong view
    data = attach_backtranslations(load_prepared(prepared), out / "backtranslations.npz")
    assert data.train_x.shape == (len(TEXTS),)


def test_cli(prepared: Path, weights_dir: Path, tmp_path: Path, capsys) -> None:
    args = ["backtranslate", "--task", "toy_text", "--prepared", str(prepared), "--out-dir"]
    with pytest.raises(SystemExit, match="(?s)no model in .*--fallback token-edit"):
        main([*args, str(tmp_path / "a"), "--weights-dir", str(tmp_path / "none")])
    assert main([*args, str(tmp_path / "b"), "--weights-dir", str(tmp_path / "none"),
                 "--fallback", "token-edit"]) == 0
    assert json.loads((tmp_path / "b" / "info.json").read_text())["fallback"] is True
    assert main([*args, str(tmp_path / "c"), "--weights-dir", str(weights_dir), "--languages",
                 "de", "--batch-size", "4", "--max-chars", "40", "--device", "cpu"]) == 0
    table = read_npz(tmp_path / "c" / "backtranslations.npz")["texts"]
    assert table.shape == (len(TEXTS), 2)
    assert "method marianmt" in capsys.readouterr().err


def test_settings_and_source_text() -> None:
    s = Settings(max_chars=5)
    assert source_text("abcdefgh", s) == "defgh"  # USB: the last characters
    assert source_text("abcdefgh", Settings(max_chars=5, keep="head")) == "abcde"
    assert source_text("abc", s) == "abc"
    with pytest.raises(ValueError, match="allowed: de, ru"):
        Settings(languages=("fr",))
    with pytest.raises(ValueError, match="keep"):
        Settings(keep="middle")
    assert Settings().key("a") != Settings(seed=1).key("a") != Settings().key("b")
