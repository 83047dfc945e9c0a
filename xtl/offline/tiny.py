"""The `tiny` preset: a random XLM-R-shaped encoder with a byte-level BPE tokenizer trained
in-process, so fast tests and the skeleton demo need nothing from outside the project."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

from xtl.core.store import umask_mode

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's order: pad id 1


def corpus() -> list[str]:
    """Text the tokenizer is trained on: 400 synthetic NLI pairs in each of the 8 synthetic
    languages, frozen in xtl/offline/tiny_corpus.txt.gz as the first synthetic NLI generator
    made them, so that `tiny-v1` stays one model whatever the generators become."""
    import gzip
    from importlib import resources

    data = resources.files("xtl.offline").joinpath("tiny_corpus.txt.gz").read_bytes()
    return gzip.decompress(data).decode("utf-8").splitlines()


def train_tokenizer(lines: list[str], vocab_size: int = 4000) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Byte-level: any script tokenises without <unk>, including text the corpus never had.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>")


def build(dest: Path, seed: int = 0) -> Path:
    """Write tokenizer + randomly initialised encoder to `dest` (atomically: temp dir, rename)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        tmp.chmod(umask_mode(directory=True))  # not mkdtemp's owner-only 0700
        tokenizer = train_tokenizer(corpus())
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=256, max_position_embeddings=514,
            type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        torch.manual_seed(seed)
        XLMRobertaModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if dest.exists():  # another process built it first: theirs is identical
            shutil.rmtree(tmp)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
