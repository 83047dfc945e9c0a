"""The CPU training levers compute what torch computes: dropout (xtl.model.dropout) with the same
distribution, the word embeddings' gradient (xtl.model.embedding_grad) with the same values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from xtl.model import dropout, embedding_grad


def test_masks_drop_p_and_follow_the_seed() -> None:
    torch.manual_seed(0)
    keep = dropout.keep_mask(torch.Size([1000, 1000]), 0.1)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    dropped = 1 - keep.double().mean().item()
    assert abs(dropped - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 1e6)  # four standard errors
    torch.manual_seed(0)
    assert torch.equal(dropout.keep_mask(torch.Size([1000, 1000]), 0.1), keep)
    torch.manual_seed(1)
    assert not torch.equal(dropout.keep_mask(torch.Size([1000, 1000]), 0.1), keep)
    # Odd sizes use half a word; every element is still drawn (none stuck at a value).
    odd = dropout.keep_mask(torch.Size([3, 7, 11]), 0.5)
    assert odd.shape == (3, 7, 11) and 0 < odd.sum() < odd.numel()
    assert dropout.keep_mask(torch.Size([100]), 0.0).all()


def test_dropout_scales_the_kept_values_and_their_gradient() -> None:
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(3)
    y = dropout.cpu_dropout(x, 0.25)
    torch.manual_seed(3)
    keep = dropout.keep_mask(x.shape, 0.25)
    assert torch.equal(y, torch.where(keep, x * (1 / 0.75), 0.0))
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, torch.where(keep, 1 / 0.75, 0.0))
    # bf16 (autocast's dtype) keeps its dtype.
    assert dropout.cpu_dropout(x.detach().bfloat16(), 0.1).dtype == torch.bfloat16


def test_dropout_is_torch_s_off_the_cpu_in_evaluation_and_at_the_edges() -> None:
    x = torch.randn(8, 8)
    assert torch.equal(dropout.cpu_dropout(x, 0.1, training=False), x)
    assert torch.equal(dropout.cpu_dropout(x, 0.0), x)
    assert torch.equal(dropout.cpu_dropout(x, 1.0), torch.zeros_like(x))
    meta = torch.empty(4, 4, device="meta")  # stands in for a GPU: torch's own dropout
    assert dropout.cpu_dropout(meta, 0.1).device.type == "meta"
    module = dropout.CpuDropout(0.3)
    assert module.p == 0.3 and isinstance(module, nn.Dropout) and not module.state_dict()
    module.eval()
    assert torch.equal(module(x), x)


def test_attention_masks_padding_and_drops_probabilities() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8) for _ in range(3))
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1, :, :, 3:] = False  # the second sequence has two padding tokens
    module = nn.Module()
    module.is_causal = False
    module.training = False
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=8 ** -0.5)
    plain, _ = dropout.attention(module, q, k, v, mask, scaling=8 ** -0.5)
    assert torch.equal(plain, want)  # no dropout: transformers' SDPA itself
    module.training = True
    torch.manual_seed(5)
    got, _ = dropout.attention(module, q, k, v, mask, scaling=8 ** -0.5, dropout=0.2)
    torch.manual_seed(5)
    keep = dropout.keep_mask(torch.Size([2, 4, 5, 5]), 0.2)
    scores = (q * 8 ** -0.5) @ k.transpose(2, 3)
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    expected = (torch.where(keep, probs / 0.8, 0.0) @ v).transpose(1, 2)
    torch.testing.assert_close(got, expected)
    assert got.shape == (2, 5, 4, 8)


def test_install_swaps_every_dropout_and_keeps_evaluation_and_the_saved_config(
        tiny_dir, tmp_path) -> None:
    from transformers import AutoModel

    from xtl.data import tasks
    from xtl.model.models import XtlModel

    torch.manual_seed(0)
    model = XtlModel(AutoModel.from_pretrained(str(tiny_dir)), [tasks.get("synth-nli")])
    model.eval()
    ids = torch.tensor([[0, 10, 11, 12, 2], [0, 13, 2, 1, 1]])
    batch = {"input_ids": ids, "attention_mask": (ids != 1).long()}
    before = model("synth-nli", batch)
    plain = sum(type(m) is nn.Dropout for m in model.modules())
    assert dropout.install(model) == plain > 0
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert model.encoder.config._attn_implementation == dropout.ATTENTION
    assert torch.equal(model("synth-nli", batch), before)  # evaluation: unchanged
    model.train()
    torch.manual_seed(0)
    first = model("synth-nli", batch)
    torch.manual_seed(0)
    assert torch.equal(model("synth-nli", batch), first)  # seeded
    assert not torch.equal(first, before)  # and dropping
    model.encoder.save_pretrained(tmp_path)
    assert dropout.ATTENTION not in (tmp_path / "config.json").read_text()


def _grads(embedding: nn.Embedding, ids: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    (embedding(ids) * upstream).sum().backward()
    return embedding.weight.grad


@pytest.mark.parametrize("padding_idx", [None, 1])
def test_reused_gradient_is_torch_s_and_reuses_its_buffer(padding_idx) -> None:
    torch.manual_seed(0)
    plain = nn.Embedding(50, 6, padding_idx=padding_idx)
    reused = embedding_grad.ReusedGradEmbedding.replacing(
        nn.Embedding(50, 6, padding_idx=padding_idx, _weight=plain.weight.detach().clone()))
    buffers = set()
    for _ in range(3):
        ids = torch.randint(0, 50, (4, 9))
        ids[0, :3] = 7  # repeated ids sum their rows
        ids[1, -2:] = 1  # padding, where it is the padding index
        upstream = torch.randn(4, 9, 6)
        want = _grads(plain, ids, upstream).clone()
        got = _grads(reused, ids, upstream)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert torch.equal(got[ids.unique()].ne(0).any(1), want[ids.unique()].ne(0).any(1))
        # stored as .grad without a copy: the gradient IS the buffer, the same one every step
        assert got.untyped_storage().data_ptr() == reused._buffer.untyped_storage().data_ptr()
        buffers.add(got.data_ptr())
        plain.weight.grad = reused.weight.grad = None  # optimizer.zero_grad()
    assert len(buffers) == 1
    # Micro-batches accumulating into one step: the second adds a tensor of its own.
    for _ in range(2):
        ids, upstream = torch.randint(0, 50, (2, 5)), torch.randn(2, 5, 6)
        want, got = _grads(plain, ids, upstream), _grads(reused, ids, upstream)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert got.data_ptr() in buffers  # the first micro-batch's .grad, added to in place


def test_reused_gradient_with_a_tied_output_projection() -> None:
    """An MLM head's decoder shares the word-embedding matrix: both gradients add up."""
    torch.manual_seed(0)
    weight = torch.randn(30, 4)
    plain = nn.Embedding(30, 4, _weight=weight.clone())
    reused = embedding_grad.ReusedGradEmbedding.replacing(nn.Embedding(30, 4,
                                                                       _weight=weight.clone()))
    for _ in range(2):
        ids = torch.randint(0, 30, (3, 5))
        for emb in (plain, reused):
            hidden = emb(ids)
            (hidden @ emb.weight.T).logsumexp(-1).sum().backward()
        torch.testing.assert_close(reused.weight.grad, plain.weight.grad, rtol=1e-6, atol=1e-6)
        plain.weight.grad = reused.weight.grad = None


def test_install_keeps_the_parameter_and_skips_what_it_cannot_reproduce() -> None:
    model = nn.Sequential(nn.Embedding(10, 3), nn.Embedding(10, 3, max_norm=1.0),
                          nn.Embedding(10, 3, sparse=True), nn.Embedding(10, 3))
    model[3].weight.requires_grad_(False)  # frozen: no gradient to reuse
    word = model[0].weight
    keys = list(model.state_dict())
    swapped = embedding_grad.install(model)
    assert swapped == [model[0]] and model[0].weight is word
    assert list(model.state_dict()) == keys
    assert [type(m) for m in model][1:] == [nn.Embedding] * 3
    with torch.no_grad():  # evaluation: torch's own lookup
        assert torch.equal(model[0](torch.tensor([1, 2])), word[[1, 2]])
    model[0](torch.tensor([1, 2])).sum().backward()
    model[0].release()
    assert model[0]._buffer is None and model[0].weight.grad is not None
