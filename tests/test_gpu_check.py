"""bench/gpu_throughput.py and bench/gpu_check.sh on the CPU (their --dry / --device cpu path)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _throughput():
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH / "gpu_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xlmr_large_config_is_the_large_shape():
    cfg = json.loads((BENCH / "configs" / "xlm-roberta-large.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["intermediate_size"], cfg["vocab_size"]) == (1024, 24, 16, 4096, 250002)


def test_flops_per_token_counts_matmul_weights_and_attention():
    bench = _throughput()
    from transformers import AutoConfig, AutoModel

    from xtl.model.models import XtlModel

    cfg = AutoConfig.for_model("xlm-roberta", hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=64, vocab_size=100,
                               max_position_embeddings=40, type_vocab_size=1)
    model = XtlModel(AutoModel.from_config(cfg), [bench.TASK])
    h, f = 32, 64
    layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h  # attn, FFN, 2 LayerNorms
    pooler = h * h + h
    head = sum(p.numel() for p in model.heads.parameters())
    assert bench.matmul_weights(model) == 2 * layer + pooler + head
    assert bench.flops_per_token(model, 16) == 6 * bench.matmul_weights(model) + 12 * 2 * 16 * h


def test_throughput_on_cpu_with_a_tiny_config(tmp_path):
    bench = _throughput()
    out = tmp_path / "t.json"
    result = bench.main(["--config", str(BENCH / "configs" / "tiny-xlmr.json"), "--device", "cpu",
                         "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
                         "--out", str(out)])
    assert json.loads(out.read_text())["tokens_per_s"] == result["tokens_per_s"] > 0
    assert result["examples_per_s"] == pytest.approx(result["tokens_per_s"] / 16, rel=0.01)
    assert result["mfu"] is None  # no peak known for a CPU
    assert bench.main(["--config", str(BENCH / "configs" / "tiny-xlmr.json"), "--device", "cpu",
                       "--batch", "2", "--seq", "16", "--steps", "1", "--warmup", "0",
                       "--peak-tflops", "1"])["mfu"] is not None


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = tmp_path / "check"
    subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry", str(out)], check=True,
                   timeout=1200, env={**os.environ, "PYTHON": sys.executable})
    assert {"env.txt", "smoke.txt", "throughput.json", "steps.txt"} <= {
        p.name for p in out.iterdir()}
    assert "SMOKE RUN" in (out / "smoke.txt").read_text()
    assert json.loads((out / "throughput.json").read_text())["tokens_per_s"] > 0
