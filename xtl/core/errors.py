"""The kit's own error types: every bad input is raised as one of these, before expensive work."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class XtlError(Exception):
    """Base class for every error the kit raises on purpose."""


class ConfigError(XtlError, ValueError):
    """The experiment file or a parameter is invalid."""


class DataError(XtlError, ValueError):
    """A dataset, mirror or raw file cannot give the rows a task needs."""


class ModelError(XtlError, ValueError):
    """A model name, path or checkpoint cannot be used."""


def closest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or ''."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown(kind: str, name: object, valid: Iterable[str], error: type[XtlError] = ConfigError):
    """An error for an unknown name that lists the valid ones and suggests the closest."""
    valid = sorted(valid)
    shown = ", ".join(valid) if len(valid) <= 40 else ", ".join(valid[:40]) + ", ..."
    return error(f"unknown {kind} {name!r}{closest(str(name), valid)}; expected one of: {shown}")
