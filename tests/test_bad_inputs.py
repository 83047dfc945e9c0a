"""Every kind of bad input the kit refuses, in one table: a clear error of the kit's own types.

Each row: an id saying what is wrong, the input, the exception type and a regex its message must
match. Experiment-file rows go through `xtl run` (in-process) against an EXISTING run directory:
the error must come before any notebook or kernel starts, and every file there must be
byte-identical afterwards. The other rows call the function that receives the input (sources,
readers, model names, checkpoints, notebook parameters). Raw-format readers are also fuzzed in
tests/test_properties.py; more format-specific rows live beside each format's tests
(test_tasks_*.py), and training-time checks in test_training.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY_GRID, write_hub

from xtl import cli
from xtl.cells import phases
from xtl.core.errors import ConfigError, DataError, ModelError, XtlError
from xtl.data import sources, tasks
from xtl.data.readers import bucc, ccg, conllu, panx
from xtl.data.tasks import multiple_choice
from xtl.grid import config, plan, rundir
from xtl.grid import run as runner
from xtl.model import zoo
from xtl.model.models import verify_checkpoint
from xtl.training import resume

GOOD = TINY_GRID


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    given: str | bytes | Callable[[Path], object]  # experiment text, or a call on tmp_path
    error: type[XtlError]
    message: str  # regex searched in str(error)

    @property
    def is_file(self) -> bool:
        return isinstance(self.given, (str, bytes))


def exp(id: str, text: str | bytes, error: type[XtlError], message: str) -> Row:
    return Row(id, text, error, message)


def call(id: str, fn: Callable[[Path], object], error: type[XtlError], message: str) -> Row:
    return Row(id, fn, error, message)


DECL = "tasks: {{mine: {{format: pair_classification, languages: [en], hub_id: a/b{}}}}}\n"
SWAP = GOOD.replace


# --- experiment files -------------------------------------------------------------------------
EXPERIMENT_ROWS = [
    # keys, versions, shape of the file
    exp("unknown key", GOOD + "epochz: 3\n", ConfigError, r"unknown key.*'epochz'.*expected one"),
    exp("not a mapping", "- just\n- a list\n", ConfigError, r"must be a mapping of keys, got list"),
    exp("contract version", SWAP("xtl: 1", "xtl: 7"), ConfigError,
        r"contract version xtl: 7 is not supported"),
    exp("models missing", SWAP("models: [tiny]\n", ""), ConfigError, r"'models' is required"),
    exp("malformed YAML", "xtl: 1\nmodels: [tiny\ntargets: [synth-nli]\n", ConfigError,
        r"exp\.yaml:3:\d+: malformed YAML"),
    exp("key given twice", GOOD + "hparams: {epochs: 1}\nhparams: {epochs: 2}\n", ConfigError,
        r"exp\.yaml:8:1: malformed YAML: key 'hparams' appears twice"),
    exp("not UTF-8", GOOD.encode() + b"name: \xff\xfe\n", ConfigError,
        r"exp\.yaml: not UTF-8 text"),
    exp("python tag", GOOD + "name: !!python/object/apply:os.getcwd []\n", ConfigError,
        r"exp\.yaml:7:7: malformed YAML: could not determine a constructor.*python/object"),
    # task and language names
    exp("target typo", SWAP("targets: [synth-nli]", "targets: [xnlii]"), ConfigError,
        r"unknown target task.*'xnlii' \(did you mean 'xnli'\?\)"),
    exp("target not a name", SWAP("targets: [synth-nli]", "targets: [[synth-nli]]"),
        ConfigError, r"targets entries must be names, got \['synth-nli'\]"),
    exp("intermediate typo", SWAP("[none, synth-nli]", "[none, mnlli]"), ConfigError,
        r"unknown intermediate task.*'mnlli' \(did you mean 'mnli'\?\)"),
    exp("multi-task typo", SWAP("[none, synth-nli]", "[none, [synth-nli, mnlii]]"), ConfigError,
        r"unknown intermediate task.*'mnlii' \(did you mean 'mnli'\?\)"),
    exp("multi-task twice", SWAP("[none, synth-nli]", "[[mnli, mnli]]"), ConfigError,
        r"multi-task stage \['mnli', 'mnli'\] names a task twice"),
    exp("chain misspelt", SWAP("[none, synth-nli]", "[{chains: [mnli]}]"), ConfigError,
        r"intermediate entry \{'chains': \['mnli'\]\} is not 'none'"),
    exp("empty chain", SWAP("[none, synth-nli]", "[none, {chain: []}]"), ConfigError,
        r"\{'chain': \[\]\} is an empty chain; write 'none'"),
    exp("retrieval as intermediate", SWAP("[none, synth-nli]", "[tatoeba]"), ConfigError,
        r"'tatoeba' is a retrieval task \(no training\)"),
    exp("eval language", SWAP("eval_languages: [de]", "eval_languages: [de, xx]"), ConfigError,
        r"unknown language.*eval_languages 'xx'; expected one of: ar, de"),
    exp("eval languages empty", SWAP("eval_languages: [de]", "eval_languages: []"), ConfigError,
        r"eval_languages must be a non-empty list, or null"),
    exp("eval language not a name", SWAP("[de]", "[{de: 1}]"), ConfigError,
        r"eval_languages entries must be names, got \{'de': 1\}"),
    exp("eval split", GOOD + "eval_split: dev\n", ConfigError,
        r"unknown eval_split.*'dev'.*expected one of: test, validation"),
    exp("override of unknown task", GOOD + "tasks: {mnlii: {epochs: 1}}\n", ConfigError,
        r"'mnlii' \(did you mean 'mnli'\?\)"),
    exp("tasks not a mapping", GOOD + "tasks: [xnli]\n", ConfigError,
        r"'tasks' must map task names"),
    exp("declared format typo", GOOD + DECL.format("").replace("pair_classif", "pair_clasif"),
        ConfigError,
        r"unknown task format 'pair_clasification' \(did you mean 'pair_classification'\?\)"),
    exp("declared languages a string", GOOD + DECL.format("").replace("[en]", "en"),
        ConfigError, r"task 'mine'.*languages = 'en'; expected a list of strings"),
    exp("declared name escapes", GOOD + DECL.format("").replace("mine", "'../../evil'"),
        ConfigError, r"declared task name '\.\./\.\./evil' must be a plain name"),
    exp("declared language escapes", GOOD + DECL.format("").replace("[en]", "['../x']"),
        ConfigError, r"task 'mine': languages must be a non-empty list of plain codes"),
    exp("declared hub id escapes", GOOD + DECL.format("").replace("a/b", "../../.."),
        ConfigError, r"hub_id '\.\./\.\./\.\.' is not a Hub dataset id"),
    exp("declared hparams a list", GOOD + DECL.format(", hparams: [1]"), ConfigError,
        r"tasks\.mine\.hparams must be a mapping of hyperparameters, got \[1\]"),
    # axes and execution keys
    exp("seed not an integer", GOOD + "seeds: [1, two]\n", ConfigError,
        r"seeds must be integers, got 'two'"),
    exp("seeds empty", GOOD + "seeds: []\n", ConfigError,
        r"seeds must be a non-empty list \(leave it out for the default \[0\]\)"),
    exp("train size 0", SWAP("[100]", "[0]"), ConfigError,
        r"train_sizes entries must be positive integers or null.*got 0"),
    exp("train size true", SWAP("[100]", "[true]"), ConfigError,
        r"train_sizes entries must be positive integers.*got True"),
    exp("subsample seed true", GOOD + "subsample_seed: true\n", ConfigError,
        r"subsample_seed must be an integer, got True"),
    exp("gpus_per_cell 0", GOOD + "gpus_per_cell: 0\n", ConfigError,
        r"gpus_per_cell must be an integer >= 1, got 0"),
    exp("executor", GOOD + "executor: slurmm\n", ConfigError, r"executor.*'slurmm'"),
    exp("keep_checkpoints", GOOD + "keep_checkpoints: some\n", ConfigError,
        r"unknown keep_checkpoints.*'some'"),
    # hyperparameters
    exp("hparam typo", GOOD + "hparams: {learning_rte: 1.0e-5}\n", ConfigError,
        r"'learning_rte' \(did you mean 'learning_rate'\?\)"),
    exp("learning rate negative", GOOD + "hparams: {learning_rate: -1.0}\n", ConfigError,
        r"learning_rate = -1\.0 must be > 0"),
    exp("learning rate NaN", GOOD + "hparams: {learning_rate: .nan}\n", ConfigError,
        r"learning_rate = nan must be a finite number"),
    exp("epochs infinite", GOOD + "hparams: {epochs: .inf}\n", ConfigError,
        r"epochs = inf must be a finite number"),
    # a bare 1e-5 is a number (tests/test_yaml_numbers.py); a quoted one stays text
    exp("learning rate as text", GOOD + "hparams: {learning_rate: '1e-5'}\n", ConfigError,
        r"learning_rate = '1e-5' has the wrong type; expected float or int"),
    exp("batch size 0", GOOD + "hparams: {batch_size: 0}\n", ConfigError,
        r"batch_size = 0 must be > 0"),
    exp("epochs a word", GOOD + "hparams: {epochs: three}\n", ConfigError,
        r"epochs = 'three' has the wrong type"),
    exp("precision", GOOD + "hparams: {precision: fp8}\n", ConfigError,
        r"unknown precision.*'fp8'"),
    exp("eval_every negative", GOOD + "hparams: {eval_every: -1}\n", ConfigError,
        r"eval_every = -1 must be >= 0"),
    exp("weight decay negative", GOOD + "hparams: {weight_decay: -0.1}\n", ConfigError,
        r"weight_decay = -0\.1 must be >= 0"),
    exp("max_grad_norm 0", GOOD + "hparams: {max_grad_norm: 0.0}\n", ConfigError,
        r"max_grad_norm = 0\.0 must be > 0"),
    exp("adam epsilon negative", GOOD + "hparams: {adam_epsilon: -1.0e-8}\n", ConfigError,
        r"adam_epsilon = -1e-08 must be > 0"),
    exp("device", GOOD + "hparams: {device: tpu}\n", ConfigError,
        r"unknown device 'tpu'; expected auto, cpu, cuda or cuda:N"),
    exp("hparams a list", GOOD + "hparams: [1, 2]\n", ConfigError,
        r"hparams must be a mapping of hyperparameters"),
    exp("grid value not a list", GOOD + "grid: {learning_rate: 1.0e-5}\n", ConfigError,
        r"grid\.learning_rate must be a non-empty list"),
    exp("grid scope typo", GOOD + "grid: {targett.epochs: [1, 2]}\n", ConfigError,
        r"unknown hyperparameter scope 'targett'"),
    # paths: mirror, raw root, names that become directories
    exp("mirror absent", GOOD + "mirror: /nonexistent/mirror\n", DataError,
        r"Hub mirror '/nonexistent/mirror' \(from the experiment file's 'mirror'\) is not a "
        r"directory"),
    exp("mirror a number", GOOD + "mirror: 5\n", ConfigError,
        r"mirror must be a non-empty string or null, got 5"),
    exp("raw_dir absent", GOOD + "raw_dir: /nonexistent/raw\n", DataError,
        r"raw data directory '/nonexistent/raw' .* is not a directory"),
    exp("name a number", GOOD + "name: 5\n", ConfigError, r"name must be a non-empty string"),
    exp("name escapes runs/", GOOD + "name: ../../evil\n", ConfigError,
        r"name '\.\./\.\./evil' must be a plain name"),
    exp("name with a slash", GOOD + "name: a/b\n", ConfigError, r"name 'a/b' must be a plain"),
    # models
    exp("model typo", SWAP("[tiny]", "[tinny]"), ModelError,
        r"'tinny' is not a preset.*did you mean 'tiny'.*cached or reachable"),
    exp("model path absent", SWAP("[tiny]", "[./no/such/model]"), ModelError,
        r"no/such/model' has no config\.json"),
    exp("model not a name", SWAP("[tiny]", "[{a: 1}]"), ConfigError,
        r"models entry given as a mapping takes 'name'.*unknown key 'a'"),
    exp("model name not a string", SWAP("[tiny]", "[{name: 3}]"), ConfigError,
        r"models entries must be names or paths, got 3"),
    exp("model recipe key typo", SWAP("[tiny]", "[{name: tiny, hparams: {lerning_rate: 1.0}}]"),
        ConfigError, r"models\.tiny\.hparams.*'lerning_rate'.*did you mean 'learning_rate'"),
    exp("model listed twice", SWAP("[tiny]", "[tiny, {name: tiny}]"), ConfigError,
        r"model 'tiny' is listed twice"),
    exp("tag rule typo", GOOD + "hparams: {tag_subtoken: frist}\n", ConfigError,
        r"unknown tag_subtoken.*'frist'.*did you mean 'first'"),
    exp("negative dev subset", GOOD + "hparams: {dev_subset: -5}\n", ConfigError,
        r"dev_subset = -5 must be >= 0"),
    # refused at plan time, not by the kernel (issue 23)
    exp("seed above 32 bits", GOOD + "seeds: [4294967296]\n", ConfigError,
        r"seeds value 4294967296 is out of range; expected an integer from 0 to 4294967295"),
    exp("seed negative", GOOD + "seeds: [-1]\n", ConfigError,
        r"seeds value -1 is out of range"),
    exp("seed beside the ranks of a cell", GOOD + "seeds: [4294967295]\ngpus_per_cell: 2\n",
        ConfigError, r"expected an integer from 0 to 4294967294"),
    exp("subsample seed above 32 bits", GOOD + "subsample_seed: 99999999999\n", ConfigError,
        r"subsample_seed value 99999999999 is out of range"),
    exp("intermediate seed negative", GOOD + "intermediate_seed: -5\n", ConfigError,
        r"intermediate_seed value -5 is out of range"),
    exp("max_length beyond the positions", GOOD + "hparams: {max_length: 4096}\n", ConfigError,
        r"max_length = 4096 \(from file\) is more than model 'tiny' has positions for \(512"),
    exp("max_length beyond the positions (task)", GOOD + "tasks: {synth-nli: {max_length: 513}}\n",
        ConfigError, r"max_length = 513 \(from tasks\.synth-nli\).*expected at most 512"),
    exp("train size above the rows", SWAP("[100]", "[100, 5000]"), ConfigError,
        r"train size 5000 \(.*\) is more than the 1200 rows of synth-nli_target-train/en/train"),
    exp("eval languages a target lacks", SWAP("targets: [synth-nli]",
        "targets: [synth-nli, tatoeba-sample]").replace("[de]", "[es]"), ConfigError,
        r"target 'tatoeba-sample' has none of the eval_languages \['es'\]; it has de, ar"),
    exp("alias bomb", GOOD + "".join(
        f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9 if i else ["lol"] * 9) + "]\n"
        for i in range(9)), ConfigError, r"exp\.yaml: expands to more than 100,000 values"),
    # the run directory already holds these cells with other parameters
    exp("changed parameters", GOOD + "hparams: {epochs: 2}\n", ConfigError,
        r"changed the parameters of 3 cell\(s\) already in .*--force"),
]


# --- everything else: call the function that receives the input ------------------------------

def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _mirror(t: Path, files: dict[str, bytes] | None = None) -> Path:
    """A mirror with facebook/xnli/de/ and the given files in it."""
    folder = t / "mirror" / "facebook" / "xnli" / "de"
    folder.mkdir(parents=True)
    for name, data in (files or {}).items():
        _write(folder / name, data)
    return t / "mirror"


def _exp_file(t: Path, text: str) -> Path:
    return _write(t / "exp.yaml", text)


XNLI = tasks.get("xnli")
SYNTH = tasks.get("synth-nli")
RAW_XQUAD = dataclasses.replace(tasks.get("xquad"), hub_languages=())
START = {"cell_id": "c", "hparams": {}}


def _start(t: Path, kind: str = "target", **params):
    args = {**START, "cell_dir": str(t / "cell"), "checkpoint_dir": str(t / "ckpt"), **params}
    return phases.start(kind, **args)


def _squad_task(t: Path, text: str | bytes):
    _write(t / "raw" / "xquad" / "xquad.de.json", text)
    return sources.load(RAW_XQUAD, "validation", "de", raw=t / "raw")


def _class_labels(names=("entailment", "neutral", "contradiction")):
    import datasets

    return datasets.Dataset.from_dict({"label": [0]}, features=datasets.Features(
        {"label": datasets.ClassLabel(names=list(names))}))


CALL_ROWS = [
    call("missing experiment file", lambda t: config.load(t / "absent.yaml"), ConfigError,
         r"experiment file '.*absent\.yaml' does not exist"),
    call("out is a file", lambda t: runner.prepare(_exp_file(
        t, GOOD + f"out: {_write(t / 'file', 'x')}\n")), ConfigError,
        r"output directory '.*file' exists and is not a directory"),
    call("status of a directory never run", lambda t: cli._root(argparse.Namespace(
        file=str(_exp_file(t, GOOD)), out=str(t / "never"))), XtlError, r"has no plan\.json"),
    call("out is the working directory", lambda t: runner.prepare(_exp_file(
        t, GOOD + "out: .\n")), ConfigError,
        r"output directory '.*' is the working directory or one above it"),
    call("out above the working directory", lambda t: runner.prepare(_exp_file(
        t, GOOD + "out: ..\n")), ConfigError, r"is the working directory or one above it"),
    call("file name gives no name", lambda t: config.load(_write(t / "..yaml", GOOD)),
         ConfigError, r"the file name gives the experiment no usable name \('\.'"),
    call("damaged plan.json (status)", lambda t: rundir.status_table(_write(
        t / "out" / "plan.json", '{"cells": [{"id": 1}]}').parent), ConfigError,
        r"plan\.json is damaged or not an xtl plan .*move it away"),
    call("label id outside the label set", lambda t: sources._label_mapper(
        XNLI, _class_labels(), "validation", "de")(7, 3), DataError,
        r"xnli/de/validation row 3: label id 7 is outside the label set \['entailment'"),
    call("choice id outside the choices", lambda t: multiple_choice._label_mapper(
        tasks.get("xcopa"), _class_labels(["choice1", "choice2"]), "xcopa/et/test")(2, 0),
        DataError, r"xcopa/et/test row 0: label id 2 is outside the label set"),
    # task, language and split names
    call("task typo", lambda t: tasks.get("xnlii"), ConfigError,
         r"unknown task 'xnlii' \(did you mean 'xnli'\?\)"),
    call("language of a task", lambda t: sources.load(SYNTH, "validation", "xx"), DataError,
         r"unknown language of task 'synth-nli' 'xx'; expected one of: ar, de"),
    call("split of a task", lambda t: sources.load(SYNTH, "dev", "en"), ConfigError,
         r"unknown split of task 'synth-nli' 'dev'; expected one of: test, train, validation"),
    # mirror files
    call("mirror without the repo", lambda t: sources.check_available(
        XNLI, "validation", "de", _write(t / "m" / "x", "").parent), DataError,
        r"has no 'facebook/xnli'.*xtl data download"),
    call("mirror without the config", lambda t: sources.check_available(
        XNLI, "validation", "fr", _mirror(t)), DataError,
        r"unknown config of 'facebook/xnli' in the mirror.*'fr'; expected one of: de"),
    call("mirror without the split", lambda t: sources.check_available(
        XNLI, "validation", "de", _mirror(t, {"test-00000-of-00001.parquet": b"x"})), DataError,
        r"unknown split in '.*xnli/de' 'validation'.*expected one of: test"),
    call("mirror file not Parquet (plan)", lambda t: sources.check_available(
        XNLI, "validation", "de", _mirror(t, {"validation-0.parquet": b"<html>"})), DataError,
        r"mirror file '.*validation-0\.parquet' is not a readable Parquet file.*download it"),
    call("mirror file not Parquet (load)", lambda t: sources.load(
        XNLI, "validation", "de", _mirror(t, {"validation-0.parquet": b"PAR1 truncated"})),
        DataError, r"xnli/de/validation: the mirror files .*validation-0\.parquet cannot be read"),
    call("mirror columns differ", lambda t: (write_hub(
        t / "m", "facebook/xnli", "de", "validation", {"premise": ["a"], "label": [0]}, None),
        sources.load(XNLI, "validation", "de", t / "m")), DataError,
        r"xnli/de/validation: columns \['hypothesis'\] missing; the source has"),
    # raw release files
    call("raw root not set", lambda t: sources.load(RAW_XQUAD, "validation", "de"), DataError,
         r"xquad/de comes from raw release files \(xquad/\); set raw_dir .* or XTL_RAW_DIR"),
    call("raw root absent", lambda t: sources.resolve_raw("/no/such/raw"), DataError,
         r"raw data directory '/no/such/raw' .* is not a directory"),
    call("raw task folder absent", lambda t: sources.load(
        RAW_XQUAD, "validation", "de", raw=t), DataError, r"must hold xquad/"),
    call("SQuAD JSON malformed", lambda t: _squad_task(t, '{"data": [\n  {"title": "x",,}\n]}'),
         DataError, r"xquad\.de\.json:2:\d+: not valid SQuAD JSON"),
    call("SQuAD JSON wrong shape", lambda t: _squad_task(t, '{"data": [5]}'), DataError,
         r"xquad\.de\.json: data\[0\] is malformed: AttributeError"),
    call("SQuAD context not text", lambda t: _squad_task(
        t, '{"data": [{"paragraphs": [{"context": 5, "qas": [{"id": 1, "question": "q"}]}]}]}'),
        DataError, r"data\[0\]\.paragraphs\[0\]\.qas\[0\] is malformed: .*must be strings"),
    call("SQuAD not UTF-8", lambda t: _squad_task(t, b'{"data": []}\n\xff\n'), DataError,
         r"xquad\.de\.json:2: not UTF-8 text"),
    call("CoNLL-U wrong columns", lambda t: conllu.read_file(_write(
        t / "x.conllu", "1\tHello\n")), DataError,
        r"x\.conllu:1: not a CoNLL-U token line: expected 10 tab-separated columns, found 2"),
    call("CoNLL-U not UTF-8", lambda t: conllu.read_file(_write(
        t / "x.conllu", b"# ok\n1\t\xe9\t_\tX\t_\t_\t0\troot\t_\t_\n")), DataError,
        r"x\.conllu:2: not UTF-8 text"),
    call("PAN-X three columns", lambda t: panx.read_file(_write(
        t / "train-en.tsv", "a\tO\tx\n"), "en"), DataError,
        r"train-en\.tsv:1: not a PAN-X token line"),
    call("CCG tag ids not JSON", lambda t: ccg.tag_set(_write(
        t / "ccg" / "tags_to_id.json", "{N: 0}").parent), DataError,
        r"tags_to_id\.json:1:2: not valid JSON"),
    call("CCG tag ids not integers", lambda t: ccg.tag_set(_write(
        t / "ccg" / "tags_to_id.json", '{"N": "zero"}').parent), DataError,
        r"tags_to_id\.json: expected a JSON object \{tag: integer id\}"),
    call("BUCC not UTF-8", lambda t: bucc.read_sentences(_write(
        t / "de-en.sample.de", b"de-1\tgut\nde-2\t\xc3\n")), DataError,
        r"de-en\.sample\.de:2: not UTF-8 text"),
    # model paths and checkpoints
    call("model config not JSON", lambda t: zoo.validate(str(_write(
        t / "model" / "config.json", "garbage").parent)), ModelError,
        r"model path '.*model': config\.json is not a JSON object"),
    call("checkpoint absent", lambda t: verify_checkpoint(t / "best"), ModelError,
         r"checkpoint '.*best' is incomplete or missing \(checkpoint\.json absent\)"),
    call("checkpoint marker truncated", lambda t: verify_checkpoint(_write(
        t / "best" / "checkpoint.json", '{"cell": "st').parent), ModelError,
        r"checkpoint '.*best' is corrupt: checkpoint\.json is not a JSON object"),
    call("resume marker truncated", lambda t: resume.ResumeStore(_write(
        t / "resume" / "resume.json", "[").parent.parent, {}).load(None), ModelError,
        r"resume state '.*resume' is corrupt: resume\.json is not a JSON object"),
    # notebook parameters (xtl.cells.phases.start: the first call of every phase notebook)
    call("notebook hparams not a mapping", lambda t: _start(t, hparams=[1]), ConfigError,
         r"notebook parameter hparams must be a mapping, got \[1\]"),
    call("notebook hparam typo", lambda t: _start(t, hparams={"epochz": 1}), ConfigError,
         r"unknown hyperparameter in notebook parameter hparams 'epochz' \(did you mean"),
    call("notebook hparam NaN", lambda t: _start(t, hparams={"learning_rate": float("nan")}),
         ConfigError, r"learning_rate = nan must be a finite number"),
    call("notebook kind", lambda t: _start(t, kind="bogus"), ConfigError,
         r"kind must be 'stage', 'target', 'retrieval' or 'transferability', got 'bogus'"),
    call("notebook cell_dir None", lambda t: _start(t, cell_dir=None), ConfigError,
         r"notebook parameter cell_dir must be a non-empty string, got None"),
    call("notebook declared_tasks a list", lambda t: _start(t, declared_tasks=[1]), ConfigError,
         r"notebook parameter declared_tasks must be a mapping"),
    call("notebook task typo", lambda t: _start(t, task="xnlii"), ConfigError,
         r"unknown task 'xnlii' \(did you mean 'xnli'\?\)"),
    call("notebook stage task not text", lambda t: _start(t, "stage", tasks=[["mnli"]]),
         ConfigError, r"notebook parameters name tasks by strings, got \['mnli'\]"),
    call("notebook eval split", lambda t: _start(t, task="synth-nli", eval_split="dev"),
         ConfigError, r"unknown notebook parameter eval_split 'dev'"),
    call("notebook eval language", lambda t: _start(
        t, task="synth-nli", eval_split="validation", eval_languages=["de", "xx"]), ConfigError,
        r"unknown language of task 'synth-nli' in notebook parameter eval_languages 'xx'"),
    call("notebook mirror absent", lambda t: _start(t, mirror="/no/mirror"), DataError,
         r"Hub mirror '/no/mirror' .* is not a directory"),
    call("notebook train size 0", lambda t: _start(t).load(SYNTH, "train", size=0), ConfigError,
         r"train size 0 must be a positive integer or None"),
    call("retrieval notebook on a classification task", lambda t: _start(
        t, "retrieval", model="tiny", task="xnli", init_checkpoint=None,
        eval_split="validation", eval_languages=None), ConfigError,
        r"task 'xnli' has format 'pair_classification'; the retrieval notebook"),
]

ROWS = EXPERIMENT_ROWS + CALL_ROWS


def test_the_table_is_large_and_ids_are_unique():
    assert len(ROWS) >= 40 and len({r.id for r in ROWS}) == len(ROWS)


# --- the existing run directory that a bad file must leave untouched -------------------------

@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    """A run directory with a plan, statuses, metrics and an index, as an earlier run left it."""
    root = tmp_path_factory.mktemp("existing") / "out"
    path = _exp_file(root.parent, GOOD)
    built = plan.build(config.load(path))
    run_dir = rundir.RunDir(root)
    (root / "experiment.yaml").parent.mkdir(parents=True)
    shutil.copy(path, root / "experiment.yaml")
    (root / "plan.json").write_text(json.dumps(built.to_json()))
    for cell in built.cells:
        run_dir.set_status(cell.id, state="done", label=cell.label)
        records = [{"task": "synth-nli", "language": "de", "split": "validation",
                    "metric": "accuracy", "value": 41.5, "n": 300, "flags": []}]
        (run_dir.cell(cell.id) / "metrics.json").write_text(json.dumps({"records": records}))
    (root / "index.html").write_text("<html>earlier index</html>")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def no_expensive_work(monkeypatch):
    """Fail the test if a notebook or kernel would start: every check must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("expensive work started before the input was refused")

    monkeypatch.setattr(runner, "execute_notebook", refuse)
    monkeypatch.setattr(runner, "kernel_name", refuse)
    monkeypatch.setattr(zoo, "materialize", refuse)


@pytest.fixture(autouse=True)
def _no_env_sources(monkeypatch):
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    monkeypatch.delenv(sources.RAW_ENV, raising=False)


@pytest.mark.parametrize("row", EXPERIMENT_ROWS, ids=[r.id for r in EXPERIMENT_ROWS])
def test_bad_experiment_file(row, tmp_path, existing_run, no_expensive_work):
    out = tmp_path / "out"
    shutil.copytree(existing_run, out)
    before = _snapshot(out)
    path = _write(tmp_path / "exp.yaml", row.given)
    with pytest.raises(row.error) as info:
        runner.run(path, out, log=lambda *_: None)
    assert type(info.value) is row.error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(row.message, str(info.value), flags=re.S), str(info.value)
    assert _snapshot(out) == before  # nothing written, nothing removed


@pytest.mark.parametrize("row", CALL_ROWS, ids=[r.id for r in CALL_ROWS])
def test_bad_input(row, tmp_path, no_expensive_work):
    with pytest.raises(XtlError) as info:
        row.given(tmp_path)
    assert isinstance(info.value, row.error), f"{type(info.value).__name__}: {info.value}"
    assert re.search(row.message, str(info.value), flags=re.S), str(info.value)


def test_near_misses_are_still_accepted(tmp_path):
    """The checks above refuse no valid file: merge keys may override (not a repeated key),
    a scalar where a list is expected is a one-item list, names may hold dots and dashes."""
    text = GOOD + (
        "name: paper-table1.v2\nhparams: &h {epochs: 1, batch_size: 8}\n"
        "tasks: {synth-nli: {<<: *h, epochs: 2}}\nseeds: 3\n")
    exp = config.load(_write(tmp_path / "exp.yaml", text))
    assert exp["name"] == "paper-table1.v2" and exp["seeds"] == [3]
    assert exp["tasks"]["synth-nli"] == {"epochs": 2, "batch_size": 8}
    assert len(plan.build(exp).cells) == 3
