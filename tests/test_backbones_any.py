"""``timm/<model>`` and ``hf/<dir or id>`` backbones: built from the model's own config, weights
from files or the local cache only, layer-wise lr decay over their own layer stacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from semibench.backbones import BACKBONES, create_backbone
from semibench.config import ConfigError, check_config, run_config
from semibench.train.config import TrainConfig
from semibench.train.optim import layer_ids, param_groups

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a",
         "dog", "ran", "big", "red", "."]


def test_timm_family_is_a_registered_name() -> None:
    assert "timm/resnet18" in BACKBONES and "hf/anything" in BACKBONES
    assert "timm" not in BACKBONES and "timm/" not in BACKBONES
    assert BACKBONES.origin("timm/resnet18") == "semibench.backbones.timm_any"


def test_timm_resnet_random_weights_features_layout_and_layer_decay() -> None:
    model = create_backbone("timm/resnet18", 7, weights="none")
    x = torch.randn(2, 3, 32, 32)
    assert model.num_features == 512 and model(x).shape == (2, 7)
    assert model.channels_last  # a convnet
    ids = layer_ids(model)
    # stem < stage 1 < ... < stage 4 < head
    order = [ids["model.conv1.weight"], ids["model.layer1.0.conv1.weight"],
             ids["model.layer2.0.conv1.weight"], ids["model.layer4.1.conv2.weight"],
             ids["head.weight"]]
    assert order == sorted(order) and len(set(order)) == 5 and order[0] == 0
    groups = param_groups(model, TrainConfig(lr=1.0, layer_decay=0.5))
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(model.head.weight)] == 1.0
    assert scale[id(model.model.conv1.weight)] == 0.5 ** order[-1]


def test_timm_normalisation_comes_from_the_model_config() -> None:
    vit = create_backbone("timm/vit_tiny_patch16_224", 3, weights="none", img_size=32)
    assert vit(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert not vit.channels_last  # one convolution: the patch embedding
    spec = vit.view_spec()
    assert spec["mean"] == list(vit.model.pretrained_cfg["mean"])
    assert spec["mean"] != create_backbone("timm/resnet18", 3, weights="none").view_spec()["mean"]


def test_timm_weights_from_a_file_load_and_the_old_classifier_is_dropped(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    model = create_backbone("timm/resnet18", 4, weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(model.model.conv1.weight, source.conv1.weight)
    assert model.head.out_features == 4
    torch.save({"model": {"module.unrelated": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no key matches"):
        create_backbone("timm/resnet18", 4, weights=str(tmp_path / "bad.pth"))


def test_timm_cache_weights_never_download(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    real = huggingface_hub.try_to_load_from_cache
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, file, cache_dir=None: real(repo, file, cache_dir=tmp_path))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        create_backbone("timm/resnet18", 4)


def _config(backbone: str, **backbone_args) -> dict:
    return {"algorithms": ["fixmatch"], "seeds": [0],
            "tasks": {"mnist": {"num_labels": [40], "backbone": backbone,
                                "backbone_args": backbone_args}}}


def test_config_checks_family_names_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tasks\.mnist\.backbone='timm/resnet_nope'.*"
                                          r"timm has no model"):
        check_config(_config("timm/resnet_nope"))
    with pytest.raises(ConfigError, match=f"hf/{tmp_path}.*config.json, model.safetensors or "
                                          f".* not in {tmp_path}"):
        check_config(_config(f"hf/{tmp_path}"), weights="error")
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        check_config(_config("timm/resnet18", weights="none", colour=1))
    cfg = check_config(_config("timm/resnet18", weights="none"))
    run = run_config(cfg, "mnist", 40, "fixmatch", 0)
    assert run["backbone"] == "timm/resnet18" and run["backbone_args"] == {"weights": "none"}


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(path)
    return path


def test_hf_text_encoder_from_a_local_directory(tiny_bert_dir: Path) -> None:
    from transformers import BertModel

    model = create_backbone(f"hf/{tiny_bert_dir}", 5, max_length=8)
    saved = BertModel.from_pretrained(tiny_bert_dir)
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight,
                       saved.embeddings.word_embeddings.weight)  # pretrained weights loaded
    ids = model.prepare_inputs(["the cat sat", "a big red dog ran on the mat ."])
    assert ids.shape == (2, 8) and model.eval()(ids).shape == (2, 5)
    lid = layer_ids(model)
    assert lid["encoder.embeddings.word_embeddings.weight"] == 0
    assert [lid[f"encoder.encoder.layer.{i}.attention.self.query.weight"] for i in range(3)] \
        == [1, 2, 3]
    assert lid["head.0.weight"] == 4
    random = create_backbone(f"hf/{tiny_bert_dir}", 5, max_length=8, pretrained=False)
    assert not torch.equal(random.encoder.embeddings.word_embeddings.weight,
                           saved.embeddings.word_embeddings.weight)


def test_hf_speech_encoder_from_a_local_directory(tmp_path: Path) -> None:
    from transformers import HubertConfig, HubertModel

    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, conv_dim=[16, 16, 16], conv_kernel=[10, 3, 3],
                             conv_stride=[5, 2, 2], num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=2)).save_pretrained(tmp_path)
    model = create_backbone(f"hf/{tmp_path}", 3).eval()
    assert type(model.encoder).__name__ == "HubertModel"
    assert model(torch.randn(2, 1600)).shape == (2, 3)
    lid = layer_ids(model)
    assert lid["encoder.feature_extractor.conv_layers.0.conv.weight"] == 0
    assert lid["encoder.masked_spec_embed"] == 0
    assert lid["encoder.encoder.layers.1.attention.q_proj.weight"] == 2


def test_text_padding_is_trimmed_without_changing_the_result(tiny_bert_dir: Path) -> None:
    full = create_backbone(f"hf/{tiny_bert_dir}", 3, max_length=32, trim_multiple=0).eval()
    trimmed = create_backbone(f"hf/{tiny_bert_dir}", 3, max_length=32, trim_multiple=8).eval()
    trimmed.load_state_dict(full.state_dict())
    ids = full.prepare_inputs(["the cat sat", "a big red dog ran on the mat ."])
    assert trimmed._trim(ids).shape == (2, 16)  # longest text: 11 tokens -> 16 of 32 columns
    assert torch.allclose(full(ids), trimmed(ids), atol=1e-5)
    assert torch.allclose(full.forward_embedded(full.embed(ids), ids),
                          trimmed.forward_embedded(trimmed.embed(ids), ids), atol=1e-5)
    # USB's mean over all positions of a batch padded to its longest text
    usb = create_backbone(f"hf/{tiny_bert_dir}", 3, max_length=32, trim_multiple=1,
                          pool="all").eval()
    usb.load_state_dict(full.state_dict())
    hidden = usb.encoder(input_ids=ids[:, :11], attention_mask=usb._mask(ids[:, :11]))
    assert torch.allclose(usb.forward_features(ids), hidden.last_hidden_state.mean(1), atol=1e-5)


def test_evaluation_batches_texts_by_length_with_the_same_predictions(tiny_bert_dir: Path) -> None:
    """Evaluation in length order reads fewer padding columns, gives every text the logits of
    the stored order (masked pooling: a text's logits do not depend on its batch) and returns
    them in the stored order."""
    from semibench.train.evaluate import all_logits, eval_order, evaluate, iter_logits

    torch.manual_seed(0)
    model = create_backbone(f"hf/{tiny_bert_dir}", 3, max_length=32, trim_multiple=8).eval()
    words = VOCAB[5:]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(n))
             for i, n in enumerate([2, 25, 3, 24, 1, 26, 4, 23, 2, 22])]
    ids = model.prepare_inputs(texts)
    lengths = (ids != 0).sum(1)
    order = eval_order(model, ids)
    assert sorted(order.tolist()) == list(range(len(texts)))
    assert lengths[order].tolist() == sorted(lengths.tolist(), reverse=True)

    widths = []
    hook = model.encoder.register_forward_pre_hook(
        lambda _m, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    cpu, view = torch.device("cpu"), lambda x, _g: x
    rows = [r for r, _ in iter_logits(model, ids, view, batch_size=2, device=cpu,
                                      autocast_dtype=None)]
    assert torch.equal(torch.cat(rows), order)  # every row once, in length order
    by_length = list(widths)
    widths.clear()
    stored = torch.cat([model(ids[i : i + 2]) for i in range(0, len(ids), 2)])  # stored order
    assert sum(by_length) < sum(widths)  # 5 batches: a long text in each when stored
    assert sum(by_length) == sum(-(-int(lengths[order[i]]) // 8) * 8 for i in range(0, 10, 2))
    hook.remove()

    logits = all_logits(model, ids, view, batch_size=2, device=cpu, autocast_dtype=None)
    assert torch.allclose(logits, stored, atol=1e-5)  # back in the stored order
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    result = evaluate(model, ids, y, view, num_classes=3, batch_size=2, device=cpu,
                      autocast_dtype=None)
    assert result.error == pytest.approx(100 * float((stored.argmax(1) != y).float().mean()))
    # with back-translations ([N, K, L]) the original (column 0) sets the order
    assert torch.equal(eval_order(model, torch.stack([ids, ids.flip(0)], 1)), order)
    # USB's all-position mean depends on the batch's padding: the stored order stays
    usb = create_backbone(f"hf/{tiny_bert_dir}", 3, max_length=32, pool="all")
    assert eval_order(usb, ids) is None
