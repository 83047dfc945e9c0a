"""The truncation and padding an encoding call leaves on a fast tokenizer, kept out of what is
saved or hashed.

transformers sets both on the `tokenizers` backend at every call that truncates or pads
(`TokenizersBackend.set_truncation_and_padding`) and leaves them there; `save_pretrained` then
writes them into tokenizer.json and `to_str()` includes them. They are not part of the
tokenizer's definition (the next call sets its own), but a process that tokenised before a
save wrote other bytes than one that read its features from the cache (docs/contracts.md,
checkpoints).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def without_call_state(tokenizer: Any) -> Iterator[None]:
    """Within: the tokenizer's backend has no truncation and no padding; after: what it had.

    Cleared and restored in place rather than on a copy: copying the backend costs ~1.5 s for
    a 250k-entry vocabulary (multilingual-e5-small), 30x its save. Nothing else encodes with
    the tokenizer meanwhile (saves run between training steps, in the training thread).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (pure Python) tokenizer keeps no such state
        yield
        return
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        yield
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)
