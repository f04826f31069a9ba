"""The USB backbones: every registered one builds with random weights (nothing downloads), maps
its domain's input to logits and features, and exposes the parameter groups the optimiser needs;
pretrained weights load from files written here, and missing weights fail with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semibench.backbones import BACKBONES, create_backbone
from semibench.train.config import TrainConfig
from semibench.train.optim import layer_ids, param_groups

USB_BACKBONES = [
    "vit_tiny_patch2_32",
    "vit_small_patch2_32",
    "vit_base_patch16_96",
    "vit_small_patch16_224",
    "bert_base_uncased",
    "hubert_base",
    "wav2vec2_base",
    "wrn_28_2",
    "wrn_28_8",
    "wrn_37_2",
]
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "a",
    "ran",
    "##s",
    "##ed",
    "big",
    "red",
    ".",
    ",",
]
TINY_BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=512,
)
TINY_SPEECH = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=[16, 16, 16],
    conv_kernel=[10, 3, 3],
    conv_stride=[5, 2, 2],
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
)
#: name -> (input shape, depth = number of transformer layers / residual blocks, feature size)
SPECS = {
    "vit_tiny_patch2_32": ((2, 3, 32, 32), 12, 192),
    "vit_small_patch2_32": ((2, 3, 32, 32), 12, 384),
    "vit_base_patch16_96": ((2, 3, 96, 96), 12, 768),
    "vit_small_patch16_224": ((2, 3, 224, 224), 12, 384),
    "bert_base_uncased": ((3, 12), 2, 32),
    "hubert_base": ((2, 1600), 2, 32),
    "wav2vec2_base": ((2, 1600), 2, 32),
    "wrn_28_2": ((2, 3, 32, 32), 12, 128),
    "wrn_28_8": ((2, 3, 32, 32), 12, 512),
    "wrn_37_2": ((2, 3, 96, 96), 16, 256),
}


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece tokenizer directory: a vocab.txt is all BertTokenizer needs."""
    path = tmp_path_factory.mktemp("vocab")
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return path


def random_kwargs(name: str, vocab_dir: Path) -> dict:
    """Random weights; the Hugging Face models shrunk to tiny configurations."""
    if name == "bert_base_uncased":
        return dict(pretrained=False, tokenizer_dir=vocab_dir, config_overrides=TINY_BERT)
    if name in ("hubert_base", "wav2vec2_base"):
        return dict(pretrained=False, config_overrides=TINY_SPEECH)
    if name.startswith("vit_"):
        return dict(pretrained=False)
    return {}


def example_input(name: str, model: nn.Module, gen: torch.Generator) -> torch.Tensor:
    shape = SPECS[name][0]
    if name == "bert_base_uncased":
        texts = ["the cat sat on the mat .", "a big red dog ran", "cats"]
        return model.prepare_inputs(texts)
    return torch.randn(shape, generator=gen)


@pytest.fixture(scope="module")
def models(vocab_dir: Path) -> dict[str, nn.Module]:
    """One random-weight instance per backbone, built once (the large ViTs take a second)."""
    torch.manual_seed(0)
    return {
        name: create_backbone(name, 5, **random_kwargs(name, vocab_dir)).eval()
        for name in USB_BACKBONES
    }


def test_every_usb_backbone_is_registered() -> None:
    assert set(USB_BACKBONES) <= set(BACKBONES.names())


@pytest.mark.parametrize("name", USB_BACKBONES)
def test_forward_shapes_and_finite(name: str, models: dict[str, nn.Module]) -> None:
    model = models[name]
    x = example_input(name, model, torch.Generator().manual_seed(1))
    batch, num_features = x.shape[0], SPECS[name][2]
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        full = model(x)
    assert model.num_features == num_features
    assert feats.shape == (batch, num_features)
    assert logits.shape == (batch, 5)
    assert torch.equal(pre, feats)
    assert torch.allclose(full, logits, atol=1e-5)  # eval mode: deterministic
    assert torch.isfinite(feats).all() and torch.isfinite(logits).all()
    assert feats.std() > 0  # not a constant output


@pytest.mark.parametrize("name", USB_BACKBONES)
def test_training_step_gives_finite_gradients(name: str, vocab_dir: Path) -> None:
    torch.manual_seed(0)
    kwargs = random_kwargs(name, vocab_dir)
    if name.startswith("vit_"):  # the layer structure is what matters here, not the size
        kwargs.update(depth=2)
    if name.startswith("wrn_"):
        kwargs.update(depth=10)
    model = create_backbone(name, 3, **kwargs).train()
    x = example_input(name, model, torch.Generator().manual_seed(2))
    model(x).logsumexp(dim=1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    last = model.head[-1] if isinstance(model.head, nn.Sequential) else model.head
    assert last.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", USB_BACKBONES)
def test_reset_classifier_changes_output_size(name: str, vocab_dir: Path) -> None:
    kwargs = random_kwargs(name, vocab_dir)
    if name.startswith("vit_"):
        kwargs.update(depth=1)
    if name.startswith("wrn_"):
        kwargs.update(depth=10)
    model = create_backbone(name, 4, **kwargs).eval()
    x = example_input(name, model, torch.Generator().manual_seed(3))
    model.reset_classifier(11)
    with torch.no_grad():
        assert model(x).shape == (x.shape[0], 11)


@pytest.mark.parametrize("name", USB_BACKBONES)
def test_layer_decay_and_weight_decay_groups(name: str, models: dict[str, nn.Module]) -> None:
    """optim.py: the stem is layer 0, block i layer i + 1, the head last, and a group's lr is
    lr * d^(last - layer); every backbone puts its final norm with its last block, so with
    ``depth`` blocks the head is layer depth + 1 and the stem's lr is lr * d^(depth + 1)."""
    model, depth, d = models[name], SPECS[name][1], 0.5
    cfg = TrainConfig(lr=2.0, weight_decay=0.1, layer_decay=d)
    group_of = {id(p): g for g in param_groups(model, cfg) for p in g["params"]}
    ids = layer_ids(model)
    assert max(ids.values()) == depth + 1
    skip = model.no_weight_decay()
    for pname, p in model.named_parameters():
        group = group_of[id(p)]
        assert group["lr"] == pytest.approx(2.0 * d ** (depth + 1 - ids[pname])), pname
        no_decay = p.ndim <= 1 or pname in skip
        assert group["weight_decay"] == (0.0 if no_decay else 0.1), pname
        if pname.startswith("head."):
            assert ids[pname] == depth + 1 and group["lr"] == 2.0
        else:  # only the head is unmatched: everything else is stem or a block
            assert ids[pname] <= depth, pname
    stem = [n for n, i in ids.items() if i == 0]
    assert stem and all(
        group_of[id(dict(model.named_parameters())[n])]["lr"]
        == pytest.approx(2.0 * d ** (depth + 1))
        for n in stem
    )
    assert {i for i in ids.values()} == set(range(depth + 2))  # every block is its own layer


def test_vit_parameter_groups_follow_timm(models: dict[str, nn.Module]) -> None:
    """Our wrapper (timm's ViT under ``vit.``, our head outside it) gets, parameter by
    parameter, the lr scale and weight decay timm's own layer decay gives the same ViT with its
    own head: the wrapper's group_matcher and no_weight_decay restate timm's correctly."""
    from timm.models import VisionTransformer
    from timm.optim import param_groups_layer_decay

    model = models["vit_small_patch2_32"]
    ref = VisionTransformer(
        img_size=32, patch_size=2, embed_dim=384, depth=12, num_heads=6, num_classes=5,
        global_pool="token", fc_norm=False,
    )  # fmt: skip
    d, wd = 0.65, 0.05
    timm_of = {}
    timm_params = dict(ref.named_parameters())
    for g in param_groups_layer_decay(
        ref, weight_decay=wd, no_weight_decay_list=ref.no_weight_decay(), layer_decay=d
    ):
        for p in g["params"]:
            timm_of[id(p)] = (g["lr_scale"], g["weight_decay"])
    by_name = {n: timm_of[id(p)] for n, p in timm_params.items()}
    ours = {}
    for g in param_groups(model, TrainConfig(lr=1.0, weight_decay=wd, layer_decay=d)):
        for p in g["params"]:
            ours[id(p)] = (g["lr_scale"], g["weight_decay"])
    names = {n: n.removeprefix("vit.") for n, _ in model.named_parameters()}
    assert set(names.values()) == set(by_name)
    for name, p in model.named_parameters():
        assert ours[id(p)] == pytest.approx(by_name[names[name]]), name
    assert by_name["patch_embed.proj.weight"][0] == pytest.approx(d**13)  # 12 blocks + head
    assert by_name["pos_embed"][1] == by_name["cls_token"][1] == 0.0


def test_vit_architecture_matches_usb(models: dict[str, nn.Module]) -> None:
    vit = models["vit_small_patch2_32"].vit
    assert vit.patch_embed.grid_size == (16, 16) and vit.pos_embed.shape == (1, 257, 384)
    assert vit.global_pool == "token" and isinstance(vit.fc_norm, nn.Identity)
    assert isinstance(vit.norm, nn.LayerNorm) and vit.norm.eps == 1e-6
    assert vit.blocks[0].attn.qkv.bias is not None
    rates = [
        b.drop_path1.drop_prob if hasattr(b.drop_path1, "drop_prob") else 0.0 for b in vit.blocks
    ]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert models["vit_tiny_patch2_32"].vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
    assert models["vit_base_patch16_96"].vit.pos_embed.shape == (1, 37, 768)


# ------------------------------------------------------------------ ViT weights


def usb_vit_checkpoint(path: Path, img_size: int, num_classes: int) -> dict[str, torch.Tensor]:
    """A checkpoint in USB's release layout: timm names under "model", a DDP "module." prefix,
    a classifier of another size and a pre-training MLP head, at another resolution."""
    from timm.models import VisionTransformer

    torch.manual_seed(7)
    src = VisionTransformer(
        img_size=img_size,
        patch_size=2,
        embed_dim=192,
        depth=12,
        num_heads=3,
        num_classes=num_classes,
    )
    state = src.state_dict()
    state["mlp.fc1.weight"] = torch.randn(8, 192)  # a pre-training head: must be dropped
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    return state


def test_vit_loads_usb_checkpoint_drops_head_and_resizes_pos_embed(tmp_path: Path) -> None:
    src = usb_vit_checkpoint(tmp_path / "vit_tiny_patch2_32_mlp_im_1k_32.pth", 16, 7)
    with _no_warnings():
        model = create_backbone("vit_tiny_patch2_32", 10, pretrained=True, weights_dir=tmp_path)
    own = model.vit.state_dict()
    for key in ("cls_token", "patch_embed.proj.weight", "blocks.5.attn.qkv.weight", "norm.bias"):
        assert torch.equal(own[key], src[key]), key
    assert model.head.weight.shape == (10, 192)  # the checkpoint's 7-class head was dropped
    # the 8x8 grid resized to 16x16: bicubic, align_corners=False, no antialiasing (as USB)
    grid = src["pos_embed"][:, 1:].reshape(1, 8, 8, 192).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 256, 192)
    assert torch.equal(own["pos_embed"][:, :1], src["pos_embed"][:, :1])
    assert torch.allclose(own["pos_embed"][:, 1:], expected, atol=1e-6)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.randn(2, 3, 32, 32))).all()


def test_vit_same_size_checkpoint_loads_exactly(tmp_path: Path) -> None:
    src = usb_vit_checkpoint(tmp_path / "w.pth", 32, 5)
    model = create_backbone(
        "vit_tiny_patch2_32", 3, pretrained=True, weights_dir=tmp_path, weights_file="w.pth"
    )
    assert torch.equal(model.vit.pos_embed, src["pos_embed"])


def test_vit_missing_weights_file_names_file_dir_and_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        create_backbone("vit_base_patch16_96", 10, weights_dir=tmp_path / "w")
    msg = str(err.value)
    assert "mae_pretrain_vit_base.pth" in msg and str(tmp_path / "w") in msg
    assert "releases/download/v.0.0.0/mae_pretrain_vit_base.pth" in msg


def test_vit_weights_dir_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMIBENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vit_small_patch16_224_mlp_im_1k_224.pth"):
        create_backbone("vit_small_patch16_224", 10, depth=1)
    usb_vit_checkpoint(tmp_path / "vit_tiny_patch2_32_mlp_im_1k_32.pth", 32, 5)
    assert create_backbone("vit_tiny_patch2_32", 2).head.out_features == 2


def test_vit_checkpoint_with_missing_keys_warns(tmp_path: Path) -> None:
    src = usb_vit_checkpoint(tmp_path / "w.pth", 32, 5)
    state = {k: v for k, v in src.items() if not k.startswith("norm.")}
    torch.save(state, tmp_path / "plain.pth")  # a bare state dict, no "model" level
    with pytest.warns(UserWarning, match="norm.weight"):
        model = create_backbone(
            "vit_tiny_patch2_32", 2, weights_dir=tmp_path, weights_file="plain.pth"
        )
    assert torch.equal(model.vit.blocks[0].attn.qkv.weight, src["blocks.0.attn.qkv.weight"])


def test_vit_checkpoint_without_matching_keys_is_an_error(tmp_path: Path) -> None:
    torch.save({"model": {"conv.weight": torch.zeros(3, 3)}}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="no key matches"):
        create_backbone("vit_tiny_patch2_32", 2, weights_dir=tmp_path, weights_file="w.pth")


def test_vit_checkpoint_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    torch.save({"model": {"pos_embed": torch.zeros(1)}, "obj": Path("x")}, tmp_path / "w.pth")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        create_backbone("vit_tiny_patch2_32", 2, weights_dir=tmp_path, weights_file="w.pth")


# ------------------------------------------------------------------ BERT


def test_bert_default_config_is_bert_base(vocab_dir: Path) -> None:
    """The real architecture (random weights): 12 layers of 768, 30,522 tokens, no pooler."""
    torch.manual_seed(0)
    model = create_backbone(
        "bert_base_uncased",
        4,
        pretrained=False,
        tokenizer_dir=vocab_dir,
        config_overrides={"vocab_size": 30522},
        max_length=16,
    ).eval()
    cfg = model.encoder.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (768, 12, 12)
    assert cfg.intermediate_size == 3072 and model.num_features == 768
    assert model.encoder.pooler is None
    assert sum(p.numel() for p in model.encoder.parameters()) == 108_891_648
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [768, 4]
    assert model.drop.p == 0.1
    with torch.no_grad():
        assert model(model.prepare_inputs(["the cat sat", "a dog"])).shape == (2, 4)
    assert max(layer_ids(model).values()) == 13


def test_bert_masked_pool_ignores_padding_and_all_pool_is_usb_mean(vocab_dir: Path) -> None:
    torch.manual_seed(0)
    kw = random_kwargs("bert_base_uncased", vocab_dir)
    short = create_backbone("bert_base_uncased", 3, max_length=10, **kw).eval()
    long = create_backbone("bert_base_uncased", 3, max_length=24, **kw).eval()
    long.load_state_dict(short.state_dict())
    texts = ["the cat sat on the mat", "dogs ran"]
    ids_short, ids_long = short.prepare_inputs(texts), long.prepare_inputs(texts)
    assert ids_short.shape == (2, 10) and ids_long.shape == (2, 24)
    with torch.no_grad():
        # a text's features do not depend on how far it is padded
        assert torch.allclose(
            short.forward_features(ids_short), long.forward_features(ids_long), atol=1e-5
        )
        hidden = short.encoder(
            input_ids=ids_short, attention_mask=(ids_short != 0).long()
        ).last_hidden_state
        short.pool = "all"  # USB: the mean over every position, padding included
        short.trim_multiple = 0  # every stored position (trimmed: see test_backbones_any)
        assert torch.allclose(short.forward_features(ids_short), hidden.mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        create_backbone("bert_base_uncased", 3, pool="max", **kw)


def test_bert_vat_embedding_path_matches_forward(vocab_dir: Path) -> None:
    torch.manual_seed(0)
    model = create_backbone(
        "bert_base_uncased", 3, max_length=12, **random_kwargs("bert_base_uncased", vocab_dir)
    ).eval()
    ids = model.prepare_inputs(["the big red dog sat", "a cat"])
    with torch.no_grad():
        direct = model.forward_features(ids)
        via_embed = model.forward_embedded(model.embed(ids), ids)
    assert torch.allclose(direct, via_embed, atol=1e-5)


def test_bert_prepare_inputs_and_view_spec(vocab_dir: Path, models: dict) -> None:
    model = models["bert_base_uncased"]
    ids = model.prepare_inputs([["the cat", "a cat"], ["dogs", "the dog ran"]])
    assert ids.shape == (2, 2, 512) and ids.dtype == torch.int32  # USB's max_length
    assert ids[0, 0, :4].tolist() == [2, 5, 6, 3]  # [CLS] the cat [SEP]
    # tokenised in chunks: any chunk size gives the same ids
    texts = [["the cat", "a cat"], ["dogs", "the dog ran"]]
    assert torch.equal(model.prepare_inputs(texts, chunk=1), ids)
    assert torch.equal(model.prepare_inputs(texts, chunk=3), ids)
    assert model.view_spec() == {"pad_id": 0, "cls_id": 2, "sep_id": 3, "mask_id": 4}
    assert model.no_weight_decay() == set()


def save_tiny_bert(path: Path, vocab_dir: Path) -> dict[str, torch.Tensor]:
    """Saved like bert-base-uncased on the hub: a pre-training model (``bert.`` prefix, a
    pooler, the MLM/NSP heads) and its WordPiece vocabulary."""
    from transformers import BertConfig, BertForPreTraining

    torch.manual_seed(5)
    src = BertForPreTraining(BertConfig(vocab_size=len(VOCAB), **TINY_BERT))
    src.save_pretrained(path)
    (path / "vocab.txt").write_text((vocab_dir / "vocab.txt").read_text())
    return {k.removeprefix("bert."): v for k, v in src.state_dict().items()}


def test_bert_loads_from_pretrained_dir(tmp_path: Path, vocab_dir: Path) -> None:
    src = save_tiny_bert(tmp_path / "bert", vocab_dir)
    model = create_backbone("bert_base_uncased", 6, pretrained_dir=tmp_path / "bert")
    own = model.encoder.state_dict()
    assert set(own) == {k for k in src if not k.startswith(("pooler.", "cls."))}
    assert all(torch.equal(own[k], src[k]) for k in own)
    assert model.head[-1].out_features == 6 and len(model.tokenizer) == len(VOCAB)


def test_bert_loads_from_hub_cache(tmp_path: Path, vocab_dir: Path) -> None:
    """The hub cache layout (models--org--name/refs/main -> snapshots/<commit>/), offline."""
    repo = tmp_path / "cache" / "models--google-bert--bert-base-uncased"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    src = save_tiny_bert(repo / "snapshots" / "0123abc", vocab_dir)
    model = create_backbone("bert_base_uncased", 2, cache_dir=tmp_path / "cache")
    assert torch.equal(
        model.encoder.embeddings.word_embeddings.weight, src["embeddings.word_embeddings.weight"]
    )


def test_bert_missing_weights_give_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="google-bert/bert-base-uncased") as err:
        create_backbone("bert_base_uncased", 2, cache_dir=tmp_path)
    assert str(tmp_path) in str(err.value) and "pretrained_dir" in str(err.value)
    with pytest.raises(FileNotFoundError, match=f"config.json, .* not in {tmp_path}"):
        create_backbone("bert_base_uncased", 2, pretrained_dir=tmp_path)
    # random weights still need bert-base-uncased's tokenizer unless one is named
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        create_backbone("bert_base_uncased", 2, pretrained=False, cache_dir=tmp_path)


def test_config_overrides_refuse_unknown_fields(vocab_dir: Path) -> None:
    with pytest.raises(ValueError, match="hiden_size"):
        create_backbone(
            "bert_base_uncased",
            2,
            pretrained=False,
            tokenizer_dir=vocab_dir,
            config_overrides={"hiden_size": 8},
        )
    with pytest.raises(ValueError, match="num_layers"):
        create_backbone("hubert_base", 2, pretrained=False, config_overrides={"num_layers": 1})


# ------------------------------------------------------------------ audio


@pytest.mark.parametrize("name", ["hubert_base", "wav2vec2_base"])
def test_speech_default_config_is_base_architecture(name: str) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, 3, pretrained=False).eval()
    cfg = model.encoder.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, len(cfg.conv_dim)) == (768, 12, 7)
    assert not cfg.do_stable_layer_norm and cfg.feat_extract_norm == "group"
    assert model.num_features == 768 and model.drop.p == 0.1
    with torch.no_grad():
        out = model(torch.randn(2, 4000))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    ids = layer_ids(model)
    assert max(ids.values()) == 13
    for pname in (
        "encoder.feature_extractor.conv_layers.0.conv.weight",
        "encoder.feature_projection.projection.weight",
        "encoder.encoder.pos_conv_embed.conv.bias",
        "encoder.encoder.layer_norm.weight",
    ):
        assert ids[pname] == 0, pname
    assert ids["encoder.encoder.layers.0.attention.k_proj.weight"] == 1


@pytest.mark.parametrize("name", ["hubert_base", "wav2vec2_base"])
def test_speech_normalises_each_clip(name: str, models: dict[str, nn.Module]) -> None:
    model = models[name]
    x = torch.randn(2, 1600, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = model.forward_features(x)
        b = model.forward_features(x * torch.tensor([[3.0], [0.2]]) + 0.5)
    assert torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model.forward_features(x[:, None])


def test_speech_time_mask_uses_torch_rng(vocab_dir: Path) -> None:
    """SpecAugment's time mask in training comes from torch's RNG: reseeding reproduces it."""
    model = create_backbone(
        "hubert_base",
        2,
        pretrained=False,
        config_overrides={
            **TINY_SPEECH,
            "mask_time_prob": 0.5,
            "mask_time_length": 4,
            "layerdrop": 0.0,
        },
    ).train()
    x = torch.randn(3, 1600)
    frames = int(model.encoder._get_feat_extract_output_lengths(1600))
    torch.manual_seed(11)
    m1 = model._time_mask(x)
    torch.manual_seed(11)
    m2 = model._time_mask(x)
    assert m1.shape == (3, frames) and torch.equal(m1, m2) and m1.any() and not m1.all()
    torch.manual_seed(11)
    f1 = model.forward_features(x)
    torch.manual_seed(11)
    assert torch.equal(f1, model.forward_features(x))
    assert model.eval()._time_mask(x) is None


def test_speech_loads_from_pretrained_dir_and_missing_is_clear(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(3)  # saved like wav2vec2-base-960h: a CTC model (``wav2vec2.`` prefix)
    src = Wav2Vec2ForCTC(Wav2Vec2Config(**TINY_SPEECH, vocab_size=12))
    src.save_pretrained(tmp_path / "w2v")
    model = create_backbone("wav2vec2_base", 4, pretrained_dir=tmp_path / "w2v")
    own, ref = model.encoder.state_dict(), src.wav2vec2.state_dict()
    assert own.keys() == ref.keys() and all(torch.equal(own[k], ref[k]) for k in own)
    with pytest.raises(FileNotFoundError, match="facebook/hubert-base-ls960"):
        create_backbone("hubert_base", 4, cache_dir=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="facebook/wav2vec2-base-960h"):
        create_backbone("wav2vec2_base", 4, cache_dir=tmp_path / "empty")


def test_speech_vat_gradient_reaches_waveform(models: dict[str, nn.Module]) -> None:
    model = models["hubert_base"]
    x = torch.randn(2, 1600)
    e = model.embed(x).clone().requires_grad_(True)
    model.forward_head(model.forward_embedded(e, x)).sum().backward()
    assert e.grad is not None and torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0


# ------------------------------------------------------------------ WRN


def usb_wrn_parameter_count(widths: list[int], per_stage: int, num_classes: int) -> int:
    """USB's WRN counted by hand: a biased stem, bias-free block convolutions, a bias-free 1x1
    shortcut where the width changes, two BNs per block, a final BN and a linear head."""
    total, cin = 3 * 16 * 9 + 16, 16
    for width in widths:
        for _ in range(per_stage):
            total += 2 * cin + cin * width * 9 + 2 * width + width * width * 9
            total += cin * width if cin != width else 0
            cin = width
    return total + 2 * cin + cin * num_classes + num_classes


def usb_wrn_forward(
    sd: dict[str, torch.Tensor],
    x: torch.Tensor,
    widths: list[int],
    per_stage: int,
    first_stride: int,
    training: bool,
) -> torch.Tensor:
    """USB's ``nets/wrn`` wiring restated with functional ops on a state dict: block BN eps
    1e-5, final BN eps 1e-3; a width-keeping block adds its raw input to conv2(conv1(act(x)));
    a stage's first block activates its input first only in stage 1, later ones feed the raw
    input to conv1 and to the 1x1 shortcut; no bias but the stem's."""

    def bn(name: str, h: torch.Tensor, eps: float) -> torch.Tensor:
        mean, var = sd[f"{name}.running_mean"].clone(), sd[f"{name}.running_var"].clone()
        w, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
        return F.batch_norm(h, mean, var, w, b, training=training, momentum=0.001, eps=eps)

    def act(h: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(h, 0.1)

    h, cin, i = F.conv2d(x, sd["stem.weight"], sd["stem.bias"], padding=1), 16, 0
    for stage, width in enumerate(widths):
        for j in range(per_stage):
            p, stride = f"blocks.{i}", ((first_stride if stage == 0 else 2) if j == 0 else 1)
            if cin == width and stride == 1:
                inner, skip = act(bn(f"{p}.bn1", h, 1e-5)), h
            else:
                inner = act(bn(f"{p}.bn1", h, 1e-5)) if stage == 0 else h
                skip = F.conv2d(inner, sd[f"{p}.shortcut.weight"], stride=stride)
            out = F.conv2d(inner, sd[f"{p}.conv1.weight"], stride=stride, padding=1)
            out = F.conv2d(act(bn(f"{p}.bn2", out, 1e-5)), sd[f"{p}.conv2.weight"], padding=1)
            h, cin, i = skip + out, width, i + 1
    pooled = act(bn("norm", h, 1e-3)).mean(dim=(2, 3))
    return F.linear(pooled, sd["head.weight"], sd["head.bias"])


@pytest.mark.parametrize(
    ("name", "kwargs", "widths", "first_stride"),
    [
        ("wrn_28_2", {}, [32, 64, 128], 1),
        ("wrn_37_2", {"depth": 16}, [32, 64, 128, 256], 2),
    ],
)
def test_wrn_forward_matches_usb_wiring(
    name: str, kwargs: dict, widths: list[int], first_stride: int
) -> None:
    """Every parameter and running statistic randomised (small running variances, so the eps
    of each BN shows), then our forward equals the restatement in eval and in train mode."""
    torch.manual_seed(0)
    model = create_backbone(name, 7, **kwargs).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * 1e-3 + 1e-4)
            elif t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) - 0.5)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    per_stage = (kwargs.get("depth", 28) - 4) // 6
    x = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    for training in (False, True):
        model.train(training)
        with torch.no_grad():
            ours = model(x)
        ref = usb_wrn_forward(sd, x, widths, per_stage, first_stride, training)
        assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-9 * ref.abs().max().item()), training


def test_wrn_architecture_matches_usb(models: dict[str, nn.Module]) -> None:
    for name, widths in (
        ("wrn_28_2", [32, 64, 128]),
        ("wrn_28_8", [128, 256, 512]),
        ("wrn_37_2", [32, 64, 128, 256]),
    ):
        model = models[name]
        count = sum(p.numel() for p in model.parameters())
        assert count == usb_wrn_parameter_count(widths, 4, 5), name
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert [m.bias is not None for m in convs].count(True) == 1 and model.stem.bias is not None
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(m.momentum == 0.001 for m in bns)
        assert [m.eps for m in bns] == [1e-5] * (len(bns) - 1) + [1e-3]
        assert bns[-1] is model.norm
        acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
        assert acts and all(m.negative_slope == 0.1 for m in acts)
    # USB's WRN-28-2 for CIFAR-10 (semilearn 0.3.2's nets.wrn.wrn_28_2(num_classes=10) counted)
    assert sum(p.numel() for p in create_backbone("wrn_28_2", 10).parameters()) == 1_467_626
    model = models["wrn_37_2"]
    with torch.no_grad():
        fmap = model.blocks(model.stem(torch.zeros(1, 3, 96, 96)))
    assert fmap.shape == (1, 256, 6, 6)  # STL-10's 96 px end as 6x6 (four stride-2 stages)
    with torch.no_grad():
        fmap = models["wrn_28_2"].blocks(models["wrn_28_2"].stem(torch.zeros(1, 3, 32, 32)))
    assert fmap.shape == (1, 128, 8, 8)
    with pytest.raises(ValueError, match="6n"):
        create_backbone("wrn_28_2", 10, depth=27)


def test_create_backbone_drops_none_kwargs(vocab_dir: Path) -> None:
    model = create_backbone("wrn_28_2", 10, drop_rate=None)
    assert isinstance(model.blocks[0].drop, nn.Identity)


class _no_warnings:
    """Fail on any warning inside the block (a clean checkpoint must load silently)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
