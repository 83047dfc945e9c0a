"""Without the Hub and without a mirror, xtl refuses at once with one clear error that says how
to point at a mirror and gives commands that exist (`hf`, not the removed `huggingface-cli`),
instead of entering the 20-40 s retry loop of `datasets` and ending in its traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import datasets
import pytest

from xtl.core import hub
from xtl.core.errors import DataError, ModelError
from xtl.data import sources, tasks
from xtl.grid import check, config, plan, run
from xtl.model import zoo

EXP = "xtl: 1\nmodels: [tiny]\ntargets: [xnli]\neval_languages: [de, fr]\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free, so nothing listens: connections are refused


@pytest.fixture
def no_network_calls(monkeypatch):
    """Any call into `datasets`' Hub loading fails the test: the refusal must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError(f"datasets reached for the Hub: {args}")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)
    monkeypatch.setattr(datasets, "get_dataset_split_names", forbidden)


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The offline switch unset, the endpoint a closed local port: only the probe can tell."""
    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    port = _closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    hub._probed.clear()
    yield port
    hub._probed.clear()


def _advice_ok(message: str) -> None:
    assert "xtl data download" in message and "XTL_HUB_MIRROR" in message
    assert "hf download facebook/xnli --repo-type dataset" in message
    assert "huggingface-cli" not in message


def test_offline_switch_refuses_a_hub_split_at_once(no_network_calls):
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest
    with pytest.raises(DataError) as info:
        sources.load(tasks.get("xnli"), "validation", "de")
    message = str(info.value)
    assert "xnli/de/validation" in message and "HF_HUB_OFFLINE is set" in message
    _advice_ok(message)


def test_unreachable_endpoint_is_detected_without_the_offline_switch(no_network_calls,
                                                                     unreachable_hub):
    assert hub.unavailable() == f"no connection to 127.0.0.1:{unreachable_hub} within 1 s"
    with pytest.raises(DataError) as info:
        sources.load(tasks.get("xnli"), "validation", "de")
    _advice_ok(str(info.value))


def test_a_listening_endpoint_counts_as_reachable(unreachable_hub, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.unavailable() is None


def test_run_refuses_before_any_cell_starts(tmp_path, no_network_calls, unreachable_hub):
    path = tmp_path / "hub.yaml"
    path.write_text(EXP)
    with pytest.raises(DataError) as info:
        run.run(path, tmp_path / "out", log=lambda _: None)
    message = str(info.value)
    assert "xnli/de/validation" in message and "xnli/fr/validation" in message
    assert "mnli/en/train" in message  # XNLI trains on MNLI: named too
    assert not (tmp_path / "out" / "cells").exists()


def test_check_lists_the_hub_gap_with_the_advice(tmp_path, no_network_calls):
    path = tmp_path / "hub.yaml"
    path.write_text(EXP)
    exp = config.load(path)
    result = check.run_check(plan.build(exp), exp)
    assert not result.ok and len(result.gaps) == 1
    assert "HF_HUB_OFFLINE is set" in result.gaps[0]
    _advice_ok(result.gaps[0])
    assert result.summary().startswith("check: NOT OK: 1 problem(s)")


def test_unknown_model_advice_names_the_hf_cli(monkeypatch):
    monkeypatch.setattr(zoo, "_hub_cached", lambda name: False)
    with pytest.raises(ModelError) as info:
        zoo.validate("someone/unknown-model")
    assert "hf download someone/unknown-model" in str(info.value)
    assert "huggingface-cli" not in str(info.value)


def test_cli_data_show_gives_the_error_not_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "xtl.cli", "data", "show", "xnli", "--lang",
                           "de"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("xtl: error: no mirror is set")
    assert "Traceback" not in proc.stderr and "hf download facebook/xnli" in proc.stderr


def test_offline_switch_leaves_cached_datasets_to_the_datasets_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 with a prepared copy in the `datasets` cache: load_dataset reads it
    without the network, so only the uncached repositories are refused."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    (tmp_path / "facebook___xnli" / "de" / "0.0.0" / "abc123").mkdir(parents=True)
    assert hub.dataset_cached("facebook/xnli") and not hub.dataset_cached("nyu-mll/glue")
    hub.require_datasets([("xnli/de/validation", "facebook/xnli")])  # no error
    with pytest.raises(DataError) as info:
        hub.require_datasets([("xnli/de/validation", "facebook/xnli"),
                              ("mnli/en/train", "nyu-mll/glue")])
    assert "but mnli/en/train must come from it" in str(info.value)
    assert "hf download nyu-mll/glue --repo-type dataset" in str(info.value)


def test_without_the_switch_the_cache_tip_is_given(unreachable_hub, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    (tmp_path / "facebook___xnli" / "de" / "0.0.0" / "abc123").mkdir(parents=True)
    with pytest.raises(DataError, match="load from it when HF_HUB_OFFLINE=1 is set"):
        hub.require_datasets([("xnli/de/validation", "facebook/xnli")])
