"""Every `spanlink` command fails on bad arguments with one `error: ...` line, never a traceback.

The commands are enumerated from the typer app, so a new command gets the generic cases (no
arguments, an unknown option, a non-number for every numeric option, NaN/infinity for every float
option, an unusable `--device`) without anyone listing it; `test_every_command_has_cases` then asks
for its base arguments and specific cases.

Decision on usage errors: click's own errors (missing option, not an integer, out of range) are
rewritten by the command group (`api.cli._OneLineErrors`) into the same one `error: ...` line, exit
status 2, so every failure of every command looks alike. An exception no command handles becomes
`error: unexpected <Type>: ...`; the tests treat that word as a failure, since it means a path that
still needs a deliberate message.

Most cases run in-process (typer's runner: fast); the ones the issue reported, and where the real
process matters (serve, devices), also run as `python -m api` subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Union, get_args, get_origin, get_type_hints

import pytest
import torch
import typer
from typer.testing import CliRunner

from api.cli import app

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "corpora" / "adjacent_iob2.conllu"
COMMANDS = typer.main.get_command(app).commands
runner = CliRunner()


@pytest.fixture
def paths(tmp_path, tiny_checkpoint, monkeypatch) -> dict[str, str]:
    """Placeholders for the cases; the default store and default model point into tmp_path."""
    monkeypatch.setenv("SPANLINK_DATA_DIR", str(tmp_path / "default-store"))
    # An empty default model: a command that loads the default before checking its arguments
    # fails with "no default model" instead of the expected message.
    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "no-default-model"))
    (tmp_path / "file").write_text("a regular file\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    (tmp_path / "doc.txt").write_text("Angela Merkel met Emmanuel Macron in Paris.\n", encoding="utf-8")
    (tmp_path / "surrogate.jsonl").write_text('{"text": "Merkel \\ud800"}\n', encoding="utf-8")
    return {
        "{ckpt}": str(tiny_checkpoint),
        "{tmp}": str(tmp_path),
        "{file}": str(tmp_path / "file"),
        "{folder}": str(tmp_path / "folder"),
        "{missing}": str(tmp_path / "missing"),
        "{doc}": str(tmp_path / "doc.txt"),
        "{surrogate}": str(tmp_path / "surrogate.jsonl"),
        "{corpus}": str(CORPUS),
    }


def _fill(args: list[str], paths: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        for key, value in paths.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def assert_one_line_error(exit_code: int, stdout: str, stderr: str, expected: str = "") -> None:
    """Non-zero exit, no traceback, stderr ending in one `error:` line, nothing half-written on stdout."""
    assert exit_code not in (0, None), (stdout, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert "error: unexpected" not in stderr, f"an unhandled exception reached the catch-all: {stderr}"
    assert expected in lines[-1], (expected, stderr)
    assert stdout == "", f"a failed command printed results: {stdout!r}"


def invoke(args: list[str]):  # noqa: ANN201 - click's Result
    return runner.invoke(app, args, env={"COLUMNS": "200"})


# Arguments with which each command would get past option parsing: the generic cases add one bad
# option to these, so they test the command's own checks, not a missing required option.
BASE = {
    "extract": ["-m", "{ckpt}", "Angela Merkel"],
    "ingest": ["{doc}", "-m", "{ckpt}", "--vectors", "span", "--data-dir", "{tmp}/store"],
    "similar": ["Angela Merkel", "-m", "{ckpt}", "--vectors", "span", "--data-dir", "{tmp}/store"],
    "entity": ["1", "--data-dir", "{tmp}/store"],
    "serve": ["-m", "{ckpt}", "--vectors", "span", "--data-dir", "{tmp}/store", "--get", "/health"],
    "train": ["--train", "{corpus}", "--out", "{tmp}/run", "--epochs", "0.0001", "--max-minutes", "0"],
    "evaluate": ["--data", "{corpus}", "-m", "{ckpt}"],
    "calibrate": ["-m", "{ckpt}", "--dev", "{corpus}", "--out", "{tmp}/calibrated"],
    "average": ["-m", "{ckpt}", "-m", "{ckpt}", "--out", "{tmp}/averaged"],
    "export-delta": ["-m", "{ckpt}", "--out", "{tmp}/delta"],
    "eval-linking": ["--data", "{folder}", "--topics", "x", "--gold-mentions"],
    "export": ["-m", "{ckpt}", "--out", "{tmp}/onnx"],
    "check": ["--data-dir", "{tmp}/store"],
    "migrate": ["--from", "sqlite:///{tmp}/s/spanlink.db", "--to", "sqlite:///{tmp}/c.db", "--no-progress"],
    "kb": ["import", "{doc}", "-m", "{ckpt}", "--vectors", "span", "--data-dir", "{tmp}/store"],
    "upgrade": ["--data-dir", "{tmp}/store"],
}

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable CUDA device")

# (args, what the error line must contain): the defects of issue 14 and those found reviewing.
CASES = [
    # extract
    (["extract", "-m", "{ckpt}", "--device", "tpu", "x"], "--device 'tpu'"),
    pytest.param(["extract", "-m", "{ckpt}", "--device", "cuda", "x"], "--device 'cuda'", marks=NO_CUDA),
    (["extract", "-m", "{ckpt}", "--device", "meta", "x"], "--device 'meta'"),
    (["extract", "-m", "{ckpt}", "-i", "{folder}"], "cannot read"),
    (["extract", "-m", "{ckpt}", "-i", "{surrogate}"], "surrogate.jsonl:1: not valid text"),
    (["extract", "-m", "{ckpt}", "ok", "bad \udcff byte"], "TEXT 2: not valid text"),
    (["extract", "-m", "{file}", "x"], "is a file"),
    (["extract", "-m", "{ckpt}", "--batch-size", "0", "x"], "--batch-size"),
    # ingest
    (["ingest", "{missing}"], "cannot read"),
    (["ingest", "{folder}"], "cannot read"),
    (["ingest", "{doc}", "--data-dir", "{file}"], "is not a folder"),
    (["ingest", "{doc}", "--data-dir", "{file}/store"], "is not a folder"),
    (["ingest", "{doc}", "--db", "nonsense://x"], "--db"),
    (["ingest", "{doc}", "--vectors", "zz"], "vectors"),
    # similar
    (["similar", "X", "--data-dir", "{missing}"], "no store in"),
    (["similar", "X", "--data-dir", "{file}"], "is not a folder"),
    (["similar", "X", "--db", "sqlite:///{missing}.db"], "no store at"),
    (["similar", "X", "--db", "nonsense://x"], "--db"),
    (["similar", "X", "--start", "1"], "start and end"),
    (["similar", "X", "--start", "0", "--end", "9"], "(0, 9)"),
    (["similar", "   "], "empty"),
    (["similar", "bad \udcff", "--data-dir", "{folder}"], "TEXT: not valid text"),
    (["similar", "X", "-k", "0"], "-k"),
    (["similar", "X", "--device", "tpu"], "--device 'tpu'"),
    # entity
    (["entity", "1", "--data-dir", "{missing}"], "no store in"),
    (["entity", "1", "--data-dir", "{file}"], "is not a folder"),
    (["entity", "1", "--db", "sqlite:///{missing}.db"], "no store at"),
    (["entity", "0"], "entity_id"),
    (["entity", "one"], "entity_id"),
    # serve: every one of these fails before a model loads (the default model is empty here)
    (["serve", "--device", "tpu"], "--device 'tpu'"),
    pytest.param(["serve", "--device", "cuda:0"], "--device 'cuda:0'", marks=NO_CUDA),
    (["serve", "--data-dir", "{file}"], "is not a folder"),
    (["serve", "--data-dir", "{file}/below"], "is not a folder"),
    (["serve", "--db", "nonsense://x"], "--db"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--vectors", "zz"], "vectors"),
    (["serve", "--api-key", "short"], "api_key"),
    (["serve", "-m", "{missing}", "--data-dir", "{tmp}/s", "--get", "/health"], "no model folder"),
    # train
    (["train", "--train", "{missing}", "--out", "{tmp}/run"], "not found"),
    (["train", "--train", "{corpus}", "--out", "{file}"], "--out"),
    (["train", "--train", "{corpus}", "--out", "{file}/run"], "cannot be created"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--labels", ","], "--labels"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--labels", "LOC,LOC"], "twice"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--epochs", "inf"], "finite"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--max-minutes", "nan"], "--max-minutes"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--max-minutes", "-1"], "--max-minutes"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--dev-sample", "-1"], "--dev-sample"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--device", "tpu"], "--device 'tpu'"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--label-map", "OTH"], "--label-map"),
    (["train", "--train", "{corpus}", "--out", "{tmp}/run", "--base", "{file}"], "is a file"),
    # evaluate
    (["evaluate", "--data", "{missing}", "-m", "{ckpt}"], "not found"),
    (["evaluate", "--data", "{corpus}", "-m", "{ckpt}", "--limit", "-1"], "--limit"),
    (["evaluate", "--data", "{corpus}", "-m", "{ckpt}", "--device", "tpu"], "--device 'tpu'"),
    (["evaluate", "--data", "{corpus}", "-m", "{ckpt}", "--dtype", "fp8"], "fp8"),
    # calibrate
    (["calibrate", "-m", "{ckpt}", "--dev", "{corpus}", "--out", "{file}"], "--out"),
    (["calibrate", "-m", "{ckpt}", "--dev", "{corpus}", "--out", "{file}/c"], "cannot be created"),
    (["calibrate", "-m", "{ckpt}", "--dev", "{corpus}", "--out", "{tmp}/c", "--shifts", ","], "--shifts"),
    (["calibrate", "-m", "{ckpt}", "--dev", "{corpus}", "--out", "{tmp}/c", "--shifts", "0,nan"], "--shifts"),
    (["calibrate", "-m", "{ckpt}", "--dev", "{corpus}", "--out", "{tmp}/c", "--shifts", "a"], "--shifts"),
    (["calibrate", "-m", "{ckpt}", "--dev", "{missing}", "--out", "{tmp}/c"], "not found"),
    # average
    (["average", "-m", "{ckpt}", "-m", "{ckpt}", "--out", "{file}"], "--out"),
    (["average", "-m", "{ckpt}", "-m", "{missing}", "--out", "{tmp}/a"], "no model folder"),
    # export-delta
    (["export-delta", "-m", "{ckpt}", "--out", "{file}"], "--out"),
    (["export-delta", "-m", "{ckpt}", "--out", "{tmp}/d", "--card", "{missing}"], "card"),
    (["export-delta", "-m", "{ckpt}", "--out", "{tmp}/d"], "e5-small"),
    # eval-linking
    (["eval-linking", "--data", "{missing}", "--topics", "x"], "no BSNLP topic folder"),
    (["eval-linking", "--data", "{folder}", "--topics", ","], "no documents"),
    (["eval-linking", "--data", "{folder}", "--topics", "x", "--vectors", "zz"], "--vectors"),
    (["eval-linking", "--data", "{folder}", "--topics", "x", "--settings", "{bad"], "--settings"),
    (["eval-linking", "--data", "{folder}", "--topics", "x", "--settings", "[1]"], "JSON object"),
    (["eval-linking", "--data", "{folder}", "--topics", "x", "--settings", '{"link_threshold": NaN}'], "NaN"),
    (
        ["eval-linking", "--data", "{folder}", "--topics", "x", "--settings", '{"vector_kind": "mix"}'],
        "contradicts",
    ),
    (["eval-linking", "--data", "{folder}", "--topics", "x", "--settings", '{"nope": 1}'], "--settings"),
    (
        ["eval-linking", "--data", "{folder}", "--topics", "x", "--surface-cache", "{folder}"],
        "--surface-cache",
    ),
    # check
    (["check", "--data-dir", "{missing}"], "no store in"),
    (["check", "--data-dir", "{file}"], "is not a folder"),
    (["check", "--db", "sqlite:///{missing}.db"], "no store at"),
    (["check", "--db", "nonsense://x"], "--db"),
    # migrate
    (["migrate", "--from", "nonsense://x", "--to", "sqlite:///{tmp}/c.db"], "--from"),
    (["migrate", "--from", "sqlite:///{doc}", "--to", "nonsense://x"], "--to"),
    (["migrate", "--from", "sqlite:///{missing}.db", "--to", "sqlite:///{tmp}/c.db"], "no store at"),
    (["migrate", "--from", "{folder}", "--to", "sqlite:///{tmp}/c.db"], "no store at"),
    (["migrate", "--from", "sqlite:///{file}", "--to", "sqlite:///{tmp}/c.db"], "no spanlink store"),
    # kb (knowledge base import, issue 18): the file is checked before any model loads
    (["kb", "import", "{missing}"], "no such file"),
    (["kb", "import", "{doc}"], "doc.txt:1: "),
    (["kb", "export", "{doc}"], "'export' is not one of 'import'"),
    (["kb", "import", "{doc}", "--data-dir", "{file}"], "is not a folder"),
    # upgrade
    (["upgrade", "--data-dir", "{missing}"], "no store in"),
    (["upgrade", "--db", "sqlite:///{file}"], "no spanlink store"),
    # export
    (["export", "-m", "{ckpt}", "--out", "{tmp}/o", "--format", "tflite"], "format"),
    (["export", "-m", "{missing}", "--out", "{tmp}/o"], "no model folder"),
]


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_bad_arguments_are_one_line_errors(paths, args, expected):
    result = invoke(_fill(args, paths))
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, expected)


def test_every_command_has_cases():
    """A new command needs base arguments (for the generic cases) and cases of its own here."""
    covered = {case.values[0][0] if hasattr(case, "values") else case[0][0] for case in CASES}
    assert set(COMMANDS) <= set(BASE), f"add base arguments for {sorted(set(COMMANDS) - set(BASE))}"
    assert set(COMMANDS) <= covered, f"add bad-argument cases for {sorted(set(COMMANDS) - covered)}"


def _callbacks() -> dict[str, object]:
    """Command name -> the Python function behind it (typer names a function `a_b` command `a-b`)."""
    return {
        info.name or info.callback.__name__.replace("_", "-"): info.callback
        for info in app.registered_commands
    }


def _scalar_type(hint: object) -> object:
    """int for `Annotated[int | None, typer.Option(...)]`; lists and unions of several types as they are."""
    if get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    if get_origin(hint) in (Union, UnionType):
        kinds = [arg for arg in get_args(hint) if arg is not type(None)]
        hint = kinds[0] if len(kinds) == 1 else hint
    return hint


def _options(name: str) -> list[tuple[str, object]]:
    """(option name, Python type) of a command's options, from its signature: stable across typer
    versions, whose click parameter objects differ."""
    hints = get_type_hints(_callbacks()[name], include_extras=True)
    out = []
    for param in COMMANDS[name].params:
        if param.opts[0].startswith("-") and param.name in hints:
            out.append((param.opts[0], _scalar_type(hints[param.name])))
    return out


def _generic_cases() -> list:
    """The cases every registered command gets without being listed anywhere."""
    cases = []
    for name in COMMANDS:
        if any(p.required for p in COMMANDS[name].params):
            cases.append(pytest.param(name, [], "", id=f"{name}-no-arguments"))
        cases.append(
            pytest.param(name, ["--no-such-option"], "--no-such-option", id=f"{name}-unknown-option")
        )
        for option, kind in _options(name):
            if kind in (int, float):
                cases.append(pytest.param(name, [option, "many"], option, id=f"{name}{option}-not-a-number"))
            if kind is float:
                for value in ("nan", "inf"):
                    cases.append(pytest.param(name, [option, value], option, id=f"{name}{option}-{value}"))
            if option == "--device":
                cases.append(pytest.param(name, [option, "tpu"], "--device 'tpu'", id=f"{name}-device"))
    return cases


def test_the_generic_cases_see_the_options():
    """Guards the enumeration itself: were the signature reading to break, the generic test would
    quietly test nothing."""
    kinds = dict(_options("train"))
    assert kinds["--epochs"] is float and kinds["--batch-size"] is int and kinds["--device"] is str
    assert set(_callbacks()) == set(COMMANDS)


@pytest.mark.parametrize(("command", "extra", "expected"), _generic_cases())
def test_generic_bad_arguments(paths, command, extra, expected):
    base = BASE.get(command, []) if extra else []
    result = invoke(_fill([command, *base, *extra], paths))
    assert_one_line_error(result.exit_code, result.stdout, result.stderr, expected)


def test_usage_errors_name_the_command_and_exit_2(paths):
    result = invoke(["similar", "X", "-k", "many"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "-k" in result.stderr and "similar --help" in result.stderr


def test_unexpected_errors_are_one_line_unless_debugging(paths, monkeypatch):
    """The last resort: an exception no command handles is still one line (with its type), and
    SPANLINK_DEBUG=1 gives the traceback back to whoever debugs it."""
    import api.cli

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(api.cli, "load_model", broken)
    monkeypatch.setattr("api.cli_train.load_model", broken)
    args = _fill(["evaluate", "--data", "{corpus}", "-m", "{ckpt}"], paths)
    result = invoke(args)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "error: unexpected KeyError: 'boom' (set SPANLINK_DEBUG=1 for the traceback)"
    )
    monkeypatch.setenv("SPANLINK_DEBUG", "1")
    result = runner.invoke(app, args)
    assert isinstance(result.exception, KeyError)


def test_train_leaves_no_logging_handler_behind(paths, monkeypatch):
    """`train` logs progress only while it runs: a handler left on the root logger, bound to a closed
    stream, printed "--- Logging error ---" tracebacks into every later in-process command."""
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    level = root.level
    result = invoke(_fill(["train", "--train", "{missing}", "--out", "{tmp}/run"], paths))
    assert result.exit_code == 1
    assert root.handlers == [] and root.level == level


# -- the same through real processes -------------------------------------------------------------

SUBPROCESS_CASES = [
    (["extract", "--device", "tpu", "x"], "--device 'tpu'"),
    pytest.param(["extract", "--device", "cuda", "x"], "--device 'cuda'", marks=NO_CUDA),
    (["serve", "--device", "tpu"], "--device 'tpu'"),
    (["serve", "--data-dir", "{file}"], "is not a folder"),
    (["similar", "Angela Merkel", "--data-dir", "{missing}"], "no store in"),
    (["train", "--out", "{tmp}/run"], "--train"),
]


@pytest.mark.parametrize(("args", "expected"), SUBPROCESS_CASES)
def test_real_process_fails_with_one_line(paths, args, expected):
    """`python -m api` as a user runs it: the default model is empty here, so each of these must fail
    on its argument before any model is loaded (loading first would say "no default model")."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "api", *_fill(args, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths["{tmp}"],
        timeout=120,
    )
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, expected)
    assert not Path(paths["{missing}"]).exists(), "a failed command created a folder"


def test_serve_on_a_port_in_use_fails_before_loading_a_model(paths):
    """uvicorn reported a taken port only after the model had loaded, in several log lines."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = invoke(["serve", "--port", port])  # the default model is empty: no model loads
    assert_one_line_error(
        result.exit_code, result.stdout, result.stderr, f"cannot listen on 127.0.0.1:{port}"
    )
