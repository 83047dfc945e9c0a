"""Hostile conditions (issue 23): locks that are raced, paused or garbled; damaged and foreign
files in a run directory; damaged feature caches; BOM/CRLF raw files; Ctrl-C and closed pipes.

Each test can fail: the lock race and the garbled locks failed before the lock was rewritten
(two winners; AttributeError/ValueError tracebacks), the damaged-file table crashed `xtl status`
and `xtl run`, and a damaged feature cache was read as if it were whole.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import TINY_GRID

from xtl import cli
from xtl.core.store import atomic_write_json
from xtl.data import sources, tasks
from xtl.data.readers import bucc, conllu, text_lines
from xtl.grid import config, lock, plan, precedence, rundir
from xtl.grid import run as runner

EXP = TINY_GRID

# --- 1. the lock: atomic take-over, checked ownership, garbled contents -----------------------

STALE = {"host": "elsewhere", "pid": 1, "started": "x", "heartbeat_unix": 1.0}


def _contender(root: str, barrier, results) -> None:
    try:
        barrier.wait(timeout=60)
        held = lock.RunLock(Path(root), log=lambda *_: None)
        held.acquire()
    except lock.LockedError:
        results.put((root, "refused"))
        return
    except Exception as err:  # noqa: BLE001  (a crash is a result the test reports)
        results.put((root, f"crashed: {type(err).__name__}: {err}"))
        return
    results.put((root, "won"))
    time.sleep(1.5)  # hold it while the other one of the pair decides


def test_take_over_of_a_stale_lock_has_exactly_one_winner(tmp_path, monkeypatch):
    """Many pairs race for one stale lock each, all released by one barrier; each contender
    is slow between judging the lock stale and acting on it (a loaded machine, NFS latency),
    which is where two winners came from."""
    judge = lock.RunLock.stale_reason

    def slow_judge(self, *args, **kwargs):
        reason = judge(self, *args, **kwargs)
        time.sleep(0.05)
        return reason

    monkeypatch.setattr(lock.RunLock, "stale_reason", slow_judge)
    pairs = 24
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2 * pairs), ctx.Queue()
    roots = []
    for i in range(pairs):
        root = tmp_path / f"run{i}"
        root.mkdir()
        atomic_write_json(root / lock.LOCK_NAME, STALE)
        roots.append(str(root))
    procs = [ctx.Process(target=_contender, args=(r, barrier, results)) for r in roots
             for _ in range(2)]
    for p in procs:
        p.start()
    outcomes: dict[str, list[str]] = {r: [] for r in roots}
    for _ in procs:
        root, outcome = results.get(timeout=120)
        outcomes[root].append(outcome)
    for p in procs:
        p.join(timeout=30)
    bad = {r: o for r, o in outcomes.items() if sorted(o) != ["refused", "won"]}
    assert not bad, f"{len(bad)} of {pairs} pairs did not have exactly one winner: {bad}"


def test_a_paused_holder_that_lost_the_lock_stops_and_never_overwrites_it(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_EVERY", 0.05)
    first = lock.RunLock(tmp_path, log=lambda *_: None)
    first.acquire()
    first._stop.set()  # paused: no heartbeat ...
    first._thread.join()
    path = tmp_path / lock.LOCK_NAME
    os.utime(path, (time.time() - 3600, time.time() - 3600))  # ... for an hour
    messages = []
    second = lock.RunLock(tmp_path, log=messages.append)
    second.acquire()
    assert "taking over a stale lock" in messages[0]
    taken = path.read_bytes()
    first._stop.clear()  # resumed: its heartbeat runs again
    first._thread = __import__("threading").Thread(target=first._beat, daemon=True)
    first._thread.start()
    time.sleep(0.3)
    assert path.read_bytes() == taken  # the new holder's lock is untouched
    with pytest.raises(lock.LockLostError, match=r"lost the lock .* stops here"):
        first.check()
    run_dir = rundir.RunDir(tmp_path, guard=first.check)
    with pytest.raises(lock.LockLostError):
        run_dir.set_status("cell-1", state="running")
    assert not (tmp_path / "cells").exists()  # nothing written after the loss
    first.release()
    assert path.read_bytes() == taken  # releasing a lost lock leaves the holder's
    second.release()
    assert not path.exists()


def test_a_heartbeat_far_in_the_future_is_stale(tmp_path):
    atomic_write_json(tmp_path / lock.LOCK_NAME, {**STALE, "heartbeat_unix": time.time() + 1e6})
    messages = []
    with lock.RunLock(tmp_path, messages.append):
        pass
    assert "in the future" in messages[0]


def test_a_lock_deleted_by_hand_is_written_again_by_its_holder(tmp_path):
    messages = []
    with lock.RunLock(tmp_path, messages.append) as held:
        (tmp_path / lock.LOCK_NAME).unlink()
        held.check()  # nobody else holds it: restored, the run goes on
        assert json.loads((tmp_path / lock.LOCK_NAME).read_text())["token"] == held.token
    assert "was removed while this run held it" in messages[0]
    assert not (tmp_path / lock.LOCK_NAME).exists()


def test_the_heartbeat_that_finds_the_lock_taken_calls_on_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_EVERY", 0.05)
    called = []
    held = lock.RunLock(tmp_path, log=lambda *_: None, on_lost=lambda: called.append(1))
    held.acquire()
    atomic_write_json(tmp_path / lock.LOCK_NAME, {**STALE, "token": "someone else"})
    held._thread.join(timeout=5)
    assert called == [1] and held.lost and "pid 1 on elsewhere" in held.lost
    held.release()
    assert (tmp_path / lock.LOCK_NAME).exists()  # not ours: left alone


GARBLED = ["", "{", "[]", "null", "5", '"text"', '{"pid": "x", "host": "h"}',
           '{"host": 5, "pid": 1}', '{"host": "h", "pid": -3}',
           '{"host": "h", "pid": 1, "heartbeat_unix": "soon"}',
           '{"host": "h", "pid": 1e400}', '{"host": "h", "pid": 1, "heartbeat_unix": 1e400}',
           "\x00\xff\xfe garbage"]


@pytest.mark.parametrize("text", GARBLED, ids=range(len(GARBLED)))
def test_a_lock_file_with_foreign_contents_is_judged_never_a_traceback(tmp_path, text):
    path = tmp_path / lock.LOCK_NAME
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(lock.LockedError, match="unexpected contents"):  # young: maybe a writer
        lock.RunLock(tmp_path).acquire()
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    messages = []
    with lock.RunLock(tmp_path, messages.append):
        pass
    assert "contents are not an xtl lock" in messages[0]
    assert not path.exists()


# --- 2. damaged or foreign files in a run directory -------------------------------------------

DAMAGE = {
    "empty": "", "truncated": '{"state": "do', "a list": "[1, 2]", "a number": "7",
    "wrong types": '{"state": ["done"], "records": "all"}', "not UTF-8": b"\xff\xfe\x00",
    "another version": '{"format": 99, "state": "finished", "records": [{"lang": "de"}]}',
    "records of strings": '{"records": ["de", "validation"]}',
    "records of nulls": '{"records": [null]}',
}


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A finished run directory (3 done cells), and a fake notebook that records each cell."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(EXP.replace("[none, synth-nli]", "[none]") + "seeds: [0, 1, 2]\n")
    built = plan.build(config.load(path))
    out = tmp_path / "out"
    rd = rundir.RunDir(out)
    out.mkdir()
    (out / "plan.json").write_text(json.dumps(built.to_json()))
    ran: list[str] = []

    def fake_cell(run_dir, cell, *args, **kwargs):
        ran.append(cell.id)
        _finish(run_dir, cell)
        return True

    monkeypatch.setattr(runner, "execute_cell", fake_cell)
    monkeypatch.setattr(runner, "kernel_name", lambda: "none")
    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: None)
    monkeypatch.setattr(runner, "render_html", lambda *a, **k: None)
    for cell in built.cells:
        _finish(rd, cell)
    return path, out, built, ran


def _finish(run_dir, cell) -> None:
    run_dir.set_status(cell.id, state="done", label=cell.label)
    records = [{"task": "synth-nli", "language": "de", "split": "validation",
                "metric": "accuracy", "value": 40.0, "n": 1, "flags": []}]
    atomic_write_json(run_dir.cell(cell.id) / "metrics.json", {"records": records})


def _cli(args, capsys) -> tuple[int, str, str]:
    try:
        cli.main(args)
        code = 0
    except SystemExit as done:
        code = done.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["status.json", "metrics.json"])
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_cell_file_reads_as_not_done_and_is_rerun(run_dir, capsys, name, kind):
    path, out, built, ran = run_dir
    target = built.cells[-1]
    data = DAMAGE[kind]
    file = out / "cells" / target.id / name
    (file.write_bytes if isinstance(data, bytes) else file.write_text)(data)
    code, text, err = _cli(["status", str(path), "--out", str(out)], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert f"pending  {target.id}" in text and "2 done, 1 pending" in text
    code, text, err = _cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    assert ran == [target.id]  # only the damaged cell runs again
    code, text, err = _cli(["report", str(path), "--out", str(out)], capsys)
    assert code == 0, err


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("command", ["status", "report", "run", "plan"])
def test_a_damaged_plan_json_is_one_error_line(run_dir, capsys, kind, command):
    path, out, _, ran = run_dir
    data = DAMAGE[kind]
    file = out / "plan.json"
    (file.write_bytes if isinstance(data, bytes) else file.write_text)(data)
    code, text, err = _cli([command, str(path), "--out", str(out)], capsys)
    assert code == 2, (text, err)
    assert err.startswith("xtl: error:") and "plan.json is damaged" in err, err
    assert len(err.strip().splitlines()) == 1 and ran == []


def test_a_damaged_lock_in_the_run_directory_is_taken_over(run_dir, capsys):
    path, out, _, _ = run_dir
    (out / lock.LOCK_NAME).write_text("[]")
    os.utime(out / lock.LOCK_NAME, (time.time() - 3600, time.time() - 3600))
    code, text, err = _cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    assert "taking over a stale lock" in text and "3 already done" in text


# --- 3. the feature cache verifies itself -----------------------------------------------------

def test_a_damaged_feature_cache_is_rebuilt_with_a_warning(tiny_dir):
    from xtl.core.hparams import Hparams
    from xtl.data.features import cache_key, features
    from xtl.model.models import build
    from xtl.model.zoo import cache_dir

    nli = tasks.get("synth-nli")
    tokenizer = build(tiny_dir, [nli])[1]
    hp = Hparams({"max_length": 32})
    split = sources.load(nli, "validation", "de", size=40)
    first = features(nli, split, tokenizer, hp)["input_ids"]
    entry = cache_dir() / "features" / cache_key(nli, split, tokenizer, hp, False)
    arrow = next(entry.glob("*.arrow"))
    data = bytearray(arrow.read_bytes())
    data[-200] ^= 0xFF  # one flipped byte inside the token ids
    arrow.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"feature cache .* is damaged .*; rebuilding it"):
        again = features(nli, split, tokenizer, hp)["input_ids"]
    assert again == first
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: it verifies again
        assert features(nli, split, tokenizer, hp)["input_ids"] == first


def test_an_unwritable_datasets_cache_is_named_as_such(tmp_path, monkeypatch):
    from conftest import write_hub

    write_hub(tmp_path / "m", "facebook/xnli", "de", "validation",
              {"premise": ["a"], "hypothesis": ["b"], "label": [0]}, None)
    import datasets

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/home/nobody/.cache/huggingface/x.lock")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(sources.DataError, match=r"the datasets cache cannot be written at "
                       r"'/home/nobody.*HF_DATASETS_CACHE"):
        sources.load(tasks.get("xnli"), "validation", "de", tmp_path / "m")


# --- 4. numbers: 1 and 1.0 are one cell -------------------------------------------------------

@pytest.mark.parametrize("a, b", [("learning_rate: 1", "learning_rate: 1.0"),
                                  ("epochs: 2", "epochs: 2.0"),
                                  ("warmup_ratio: 0", "warmup_ratio: 0.0"),
                                  ("multitask_temperature: 2", "multitask_temperature: 2.0")])
def test_an_integer_and_its_float_make_the_same_cell(tmp_path, a, b):
    ids = []
    for i, value in enumerate((a, b)):
        path = tmp_path / f"e{i}.yaml"
        path.write_text(EXP + f"name: e\nhparams: {{{value}}}\ngrid: {{target.{value.split(':')[0]}"
                        f": [{value.split(': ')[1]}]}}\n")
        ids.append([c.id for c in plan.build(config.load(path)).cells])
    assert ids[0] == ids[1]


def test_layer_keeps_index_and_fraction_apart():
    assert precedence.canonical("layer", 1) == 1 and precedence.canonical("layer", 1.0) == 1.0
    assert isinstance(precedence.canonical("layer", 1.0), float)


# --- 5. byte-order marks and CRLF line ends ---------------------------------------------------

def _windows(text: str) -> bytes:
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()


def test_text_lines_drops_a_bom_and_crlf(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(_windows("a\tb\nc\n"))
    assert [line for _, line in text_lines(path)] == ["a\tb\n", "c\n"]


def test_bucc_keeps_no_language_prefix_on_a_bom_file(tmp_path):
    clean = bucc.read_sentences(_write(tmp_path / "a.de", b"de-000001\tgut\nde-000002\tja\n"))
    bom = bucc.read_sentences(_write(tmp_path / "b.de",
                                     _windows("de-000001\tgut\nde-000002\tja\n")))
    assert bom == clean


def test_conllu_reads_a_windows_file_like_a_unix_one(tmp_path):
    text = "# text = Hi\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n"
    assert (conllu.read_file(_write(tmp_path / "b.conllu", _windows(text)))
            == conllu.read_file(_write(tmp_path / "a.conllu", text.encode())))


@pytest.mark.parametrize("name", ["panx-sample", "tatoeba-sample"])
def test_bundled_readers_read_bom_crlf_copies_alike(tmp_path, name):
    task = tasks.get(name)
    language = "de"
    root = sources._raw_root(task, language, None)
    copy = tmp_path / root.name
    for file in root.rglob("*"):
        if file.is_file():
            dest = copy / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(_windows(file.read_text(encoding="utf-8")))
    split = "test" if task.format == "retrieval" else "validation"
    clean, _ = task.raw_reader(root, split, language)
    windows, _ = task.raw_reader(copy, split, language)
    assert windows == clean and len(clean) > 0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- 6. Ctrl-C and closed pipes ---------------------------------------------------------------

def test_ctrl_c_prints_one_line_leaves_nothing_running_and_a_rerun_continues(run_dir, capsys,
                                                                            monkeypatch):
    path, out, built, ran = run_dir
    for cell in built.cells:  # a fresh directory: every cell to run
        (out / "cells" / cell.id / "status.json").unlink()
    real = runner.execute_cell
    calls = []

    def interrupted(run_dir, cell, *args, **kwargs):
        calls.append(cell.id)
        if len(calls) == 2:  # the second cell: Ctrl-C while its notebook runs
            run_dir.set_status(cell.id, state="running", label=cell.label)
            runner._interrupted(run_dir, cell, "t", "local")
            raise KeyboardInterrupt
        return real(run_dir, cell, *args, **kwargs)

    monkeypatch.setattr(runner, "execute_cell", interrupted)
    code, text, err = _cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 130 and err.strip().splitlines() == [
        "xtl: interrupted; finished cells are kept and the next `xtl run` continues from them"]
    assert not (out / lock.LOCK_NAME).exists()
    code, text, err = _cli(["status", str(path), "--out", str(out)], capsys)
    assert "running" not in text and "1 done, 2 pending" in text and "interrupted" in text
    monkeypatch.setattr(runner, "execute_cell", real)
    code, text, err = _cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 0 and "2 ran, 1 already done" in text


def test_a_cell_left_running_by_this_run_is_marked_interrupted(run_dir):
    _, out, built, _ = run_dir
    rd = rundir.RunDir(out)
    cell = built.cells[0]
    rd.set_status(cell.id, state="running", label=cell.label, started="t")
    runner.mark_interrupted(rd, built)
    assert rd.status(cell.id)["state"] == "interrupted"
    assert rundir.state_of(rd, built, cell)[0] == "pending"


def test_status_into_a_closed_pipe_exits_quietly(run_dir):
    path, out, _, _ = run_dir
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        f"'{sys.executable}' -m xtl.cli status '{path}' --out '{out}' | head -c 1",
        shell=True, capture_output=True, text=True, env=env, cwd=out.parent)
    assert proc.stderr == "" and proc.stdout == str(out)[0]


@pytest.mark.slow
def test_ctrl_c_of_a_real_run_while_a_kernel_trains(tmp_path):
    """SIGINT to the whole foreground group (what a terminal's Ctrl-C does) while the first
    cell's notebook runs: one line on stderr, no traceback, no cell left `running`, no lock."""
    import signal

    (tmp_path / "exp.yaml").write_text(EXP + "hparams: {epochs: 3, max_length: 64}\n")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("XTL_FAULT", "XTL_FAULT_CELL")}
    proc = subprocess.Popen([sys.executable, "-m", "xtl.cli", "run", str(tmp_path / "exp.yaml"),
                             "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list(out.glob("cells/*/log.txt")):
            time.sleep(0.2)
        time.sleep(4)  # the kernel is up and working
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith(
        "xtl: interrupted"), stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) <= 2, stderr
    states = [json.loads(p.read_text())["state"] for p in out.glob("cells/*/status.json")]
    assert "interrupted" in states and "running" not in states, states
    assert not (out / lock.LOCK_NAME).exists()


def test_an_error_echoing_a_huge_value_prints_a_bounded_line(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(EXP.replace("targets: [synth-nli]", "targets: [[" + ", ".join(
        ["synth-nli"] * 50_000) + "]]"))
    code, _, err = _cli(["plan", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("xtl: error:") and "targets entries must be names" in err
    assert len(err) < 2200 and "characters cut" in err
