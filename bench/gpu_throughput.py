"""Training throughput and MFU of an XLM-R-Large-shaped model with the kit's training step.

Usage: python bench/gpu_throughput.py [--config bench/configs/xlm-roberta-large.json]
           [--device cuda] [--precision bf16] [--batch 32] [--seq 256] [--steps 20] [--warmup 3]
           [--peak-tflops T] [--out FILE.json]

The model is built from the config alone (random weights: nothing is downloaded) with a
sequence-classification head (3 labels, as MNLI/XNLI), and trained with `xtl.training.train`'s own
pieces: `make_accelerator` (bf16 autocast), `make_optimizer` (fused AdamW, the kit's weight
decay groups) and `train_step` (forward, backward, clip, step). Every batch is full length
(`--seq` real tokens, no padding), so tokens/s is the model's, not the data's.

FLOPs per trained token = 6 N + 12 L S H (N: the weights used in matrix products, i.e. every
weight but the embedding tables; L layers, S sequence length, H hidden size: attention scores
and the weighted sum, forward and backward), the formula of the PaLM paper (Chowdhery et al.
2022, appendix B). MFU = achieved FLOP/s / the device's dense bf16 peak (`--peak-tflops`, or
the table below by device name; none on a CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel

from xtl.core.hparams import Hparams
from xtl.data import tasks
from xtl.model.models import XtlModel
from xtl.training import devices, train

TASK = tasks.get("synth-nli")  # a 3-label classification head
CONFIG = Path(__file__).parent / "configs" / "xlm-roberta-large.json"
# dense bf16 peak, TFLOP/s, of the SXM parts (vendor data sheets; sparsity not counted)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def matmul_weights(model: XtlModel) -> int:
    """Weights that enter matrix products: all but the embedding tables."""
    embeddings = sum(p.numel() for p in model.encoder.embeddings.parameters())
    return sum(p.numel() for p in model.parameters()) - embeddings


def flops_per_token(model: XtlModel, seq: int) -> float:
    cfg = model.encoder.config
    return 6 * matmul_weights(model) + 12 * cfg.num_hidden_layers * seq * cfg.hidden_size


def measure(config: Path | dict, device: str = "cuda", precision: str = "bf16", batch: int = 32,
            seq: int = 256, steps: int = 20, warmup: int = 3, peak: float | None = None,
            seed: int = 0) -> dict:
    """Examples/s, tokens/s, TFLOP/s and MFU of `steps` timed training steps after `warmup`."""
    dev = devices.resolve_device(device)
    fields = dict(config) if isinstance(config, dict) else json.loads(Path(config).read_text())
    fields.pop("architectures", None)
    cfg = AutoConfig.for_model(fields.pop("model_type"), **fields)
    if seq + 2 > cfg.max_position_embeddings:
        raise SystemExit(f"--seq {seq}: the config has {cfg.max_position_embeddings} positions")
    torch.manual_seed(seed)
    model = XtlModel(AutoModel.from_config(cfg), [TASK])
    hp = Hparams({"learning_rate": 1e-5})
    accelerator = devices.make_accelerator(devices.resolve_precision(precision, dev), dev)
    optimizer = train.make_optimizer(model, hp)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    g = torch.Generator().manual_seed(seed)

    def batch_() -> dict:
        ids = torch.randint(5, cfg.vocab_size, (batch, seq), generator=g)
        return {"input_ids": ids.to(dev), "attention_mask": torch.ones_like(ids).to(dev),
                "labels": torch.randint(0, 3, (batch,), generator=g).to(dev)}

    batches = [batch_() for _ in range(min(steps, 4))]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    losses = []
    for i in range(warmup):
        train.train_step(accelerator, model, optimizer, scheduler, TASK,
                         [batches[i % len(batches)]], 1.0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sync()
    start = time.perf_counter()
    for i in range(steps):
        loss, _, _ = train.train_step(accelerator, model, optimizer, scheduler, TASK,
                                      [batches[i % len(batches)]], 1.0)
        losses.append(loss)
    sync()
    seconds = time.perf_counter() - start
    unwrapped = accelerator.unwrap_model(model)
    per_token = flops_per_token(unwrapped, seq)
    tokens_s = steps * batch * seq / seconds
    tflops = per_token * tokens_s / 1e12
    peak = peak_tflops(dev, peak)
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "precision": devices.resolve_precision(precision, dev),
        "parameters": sum(p.numel() for p in unwrapped.parameters()),
        "matmul_weights": matmul_weights(unwrapped), "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size, "batch": batch, "seq": seq, "steps": steps,
        "warmup": warmup, "seconds": round(seconds, 4),
        "examples_per_s": round(steps * batch / seconds, 2), "tokens_per_s": round(tokens_s, 1),
        "flops_per_token": per_token, "achieved_tflops": round(tflops, 3),
        "peak_tflops": peak, "mfu": round(tflops / peak, 4) if peak else None,
        "max_memory_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
        if dev.type == "cuda" else None,
        "first_loss": losses[0], "last_loss": losses[-1],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="transformers config (JSON)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the device")
    parser.add_argument("--out", help="write the figures here as JSON too")
    args = parser.parse_args(argv)
    result = measure(Path(args.config), args.device, args.precision, args.batch, args.seq,
                     args.steps, args.warmup, args.peak_tflops)
    result["command"] = " ".join([sys.executable, *sys.argv]) if argv is None else argv
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
