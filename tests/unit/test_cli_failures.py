"""Commands that fail clearly (issue 15): one line saying what is wrong and what to do, no
traceback, no secret, and an exit code that says which kind of problem it was.

These need no broker; an unreachable broker and `bridge tail | head` are in
tests/integration/test_cli_failures.py.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from kafka import errors as kafka_errors

from bridge import cli
from bridge.tools.connection import BrokerUnavailable, CredentialsRefused
from bridge.commands import subscriber
from bridge.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_FATAL,
    EXIT_SHUTDOWN_OVERRUN,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    BadInput,
    BridgeError,
    ConfigurationError,
    DatabaseUnavailable,
    FatalError,
)
from bridge.settings import check_environment, known_variables, unknown_variables
from bridge.stream import retry, shutdown

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kQ8vZ2mX7pL4nR9tW1yB6cF3hJ5sD0gA"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BRIDGE_* variable of the developer's shell or CI leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("bridge: ")
    return lines[0]


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the exit codes ------------------------------------------------------------------------------


def test_the_exit_codes_are_distinct_and_agree_with_the_worker() -> None:
    codes = [code for code, _ in EXIT_CODES]
    assert len(codes) == len(set(codes))
    assert retry.FATAL_EXIT == cli.FATAL_EXIT == EXIT_FATAL == 4
    assert shutdown.SHUTDOWN_OVERRUN_EXIT == EXIT_SHUTDOWN_OVERRUN == 3
    assert EXIT_USAGE == 2  # argparse's own
    assert len({EXIT_USAGE, EXIT_CONFIG, EXIT_UNAVAILABLE, EXIT_DATA, EXIT_FATAL, EXIT_SHUTDOWN_OVERRUN}) == 6
    assert {code for code in codes} >= {0, 1, 2, 3, 4, 5, 6, 7, 130, 141}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BridgeError("no such thing"), EXIT_USAGE),
        (ConfigurationError("set X"), EXIT_CONFIG),
        (DatabaseUnavailable("down"), EXIT_UNAVAILABLE),
        (BrokerUnavailable(["h:1"], 10, "KafkaTimeoutError"), EXIT_UNAVAILABLE),
        (CredentialsRefused(["h:1"], 10, "SaslAuthenticationFailedError", "u"), EXIT_CONFIG),
        (BadInput("bad"), EXIT_DATA),
        (FatalError("stop"), EXIT_FATAL),
    ],
)
def test_each_kind_of_error_has_its_exit_code(error: BridgeError, code: int) -> None:
    assert error.exit_code == code


def test_the_help_and_the_operations_guide_list_every_exit_code(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for code, _meaning in EXIT_CODES:
        assert f"\n  {code:>3}  " in help_text, code
        assert f"| {code} |" in guide, f"docs/operations.md has no row for exit code {code}"


def test_a_usage_error_stays_argparse_s_2(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["tail"])
    assert done.value.code == EXIT_USAGE


# -- version and help ----------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"bridge {metadata.version('bridge')}"


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["tail"], ["BRIDGE_BROKER_URL", "BRIDGE_KAFKA_SECURITY_PROTOCOL", "BRIDGE_KAFKA_SASL_PASSWORD"]),
        (["transcript"], ["BRIDGE_BROKER_URL", "BRIDGE_KAFKA_SSL_CAFILE"]),
        (["export"], ["BRIDGE_BROKER_URL"]),
        (["simulate"], ["BRIDGE_BROKER_URL"]),
        (["topics", "apply"], ["BRIDGE_BROKER_URL", "BRIDGE_TOPIC_PARTITIONS", "BRIDGE_REPLICATION_FACTOR"]),
        (["review", "list"], ["BRIDGE_DATABASE_URL"]),
        (["review", "reject"], ["BRIDGE_DATABASE_URL", "BRIDGE_BROKER_URL", "BRIDGE_OPERATOR_SIGNING_KEY"]),
        (["explain"], ["BRIDGE_DATABASE_URL"]),
        (["db", "upgrade"], ["BRIDGE_DATABASE_URL"]),
        (["republish"], ["BRIDGE_DATABASE_URL"]),
    ],
)
def test_each_command_s_help_lists_the_settings_it_reads(argv: list[str], wanted: list[str], capsys) -> None:
    text = _help(argv, capsys)
    assert "Settings read (environment variables" in text
    listed = text.split("Settings read", 1)[1]
    for name in wanted:
        assert name in listed, (argv, name)
    if argv[0] in ("review", "explain") and argv[-1] != "reject":
        assert "BRIDGE_BROKER_URL" not in listed


def test_the_worker_s_help_lists_every_setting_it_reads(capsys) -> None:
    listed = _help(["worker"], capsys).split("Settings read", 1)[1]
    for name in known_variables():
        if name != "BRIDGE_OPERATOR_SIGNING_KEY":
            assert name in listed, name


def test_every_command_has_a_settings_line(capsys) -> None:
    parser = cli.build_parser()
    for command, leaf in cli._leaf_parsers(parser):
        if command in cli.COMMAND_SETTINGS:
            assert leaf.epilog and "Settings read" in leaf.epilog, command


# -- unknown and unparsable settings ------------------------------------------------------------


def test_an_unknown_bridge_variable_stops_start_up_naming_it(clean_env, tmp_path, capsys) -> None:
    database = tmp_path / "bridge.db"
    clean_env.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{database}")
    clean_env.setenv("BRIDGE_FROBNICATE", "1")
    code, out, err = _run(["review", "list"], capsys)
    assert code == EXIT_CONFIG and out == ""
    line = _one_line(err)
    assert "unknown setting BRIDGE_FROBNICATE" in line and "did you mean" not in line
    assert not database.exists()


def test_a_misspelt_variable_suggests_the_setting(clean_env, capsys) -> None:
    clean_env.setenv("BRIDGE_DATABSE_URL", "sqlite:///x.db")
    code, _out, err = _run(["explain", "lrn_x"], capsys)
    assert code == EXIT_CONFIG
    assert "BRIDGE_DATABSE_URL (did you mean BRIDGE_DATABASE_URL?)" in _one_line(err)


def test_the_worker_refuses_an_unknown_variable_in_a_subprocess(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    env.update(BRIDGE_BROKER_URL=f"kafka://127.0.0.1:{_unused_port()}", BRIDGE_HOURS_PER_CREDT="12")
    done = subprocess.run([sys.executable, "-m", "bridge", "worker"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "BRIDGE_HOURS_PER_CREDT (did you mean BRIDGE_HOURS_PER_CREDIT?)" in _one_line(done.stderr)
    assert not (tmp_path / "bridge.db").exists()


def test_several_unknown_variables_are_named_at_once() -> None:
    environ = {"BRIDGE_BROKER": "x", "bridge_web_prot": "1", "BRIDGE_WEB_PORT": "1", "bridge_group_id": "g", "PATH": "/"}
    assert unknown_variables(environ) == ["BRIDGE_BROKER", "bridge_web_prot"]
    with pytest.raises(ConfigurationError) as caught:
        check_environment(environ)
    message = str(caught.value)
    assert "BRIDGE_BROKER (did you mean BRIDGE_BROKER_URL?)" in message
    assert "bridge_web_prot (did you mean BRIDGE_WEB_PORT?)" in message
    check_environment({"BRIDGE_WEB_PORT": "1", "HOME": "/root"})  # known ones pass


def test_the_test_suite_s_own_variables_are_not_bridge_settings() -> None:
    # The suite's PostgreSQL server is TEST_POSTGRES_URL: a BRIDGE_* name would stop every command.
    from tests.conftest import POSTGRES_ENV

    assert not POSTGRES_ENV.startswith("BRIDGE_")


def test_an_unparsable_setting_names_the_variable_not_the_field(clean_env, capsys) -> None:
    clean_env.setenv("BRIDGE_HOURS_PER_CREDIT", "abc")
    code, _out, err = _run(["worker"], capsys)
    assert code == EXIT_CONFIG
    line = _one_line(err)
    assert "BRIDGE_HOURS_PER_CREDIT" in line and "valid number" in line
    assert "hours_per_credit" not in line and "abc" not in line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_PSEUDONYM_PREVIOUS_KEYS", json.dumps({"old": SECRET})),
        ("BRIDGE_PSEUDONYM_PREVIOUS_KEYS", f"not json {SECRET}"),
        ("BRIDGE_WEB_PORT", SECRET),
        ("BRIDGE_PROFILE", SECRET),
    ],
)
def test_an_unparsable_setting_never_repeats_its_value(clean_env, capsys, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    code, out, err = _run(["review", "list"], capsys)
    assert code == EXIT_CONFIG
    line = _one_line(err)
    assert name in line
    assert SECRET not in out + err and SECRET[:8] not in err


# -- the database --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["not a url", f"postgresql://bridge:{SECRET}@db:port/bridge", f"mysteriousdb://bridge:{SECRET}@db/bridge"],
)
def test_a_malformed_database_url_is_one_line_naming_the_variable(clean_env, capsys, url: str) -> None:
    clean_env.setenv("BRIDGE_DATABASE_URL", url)
    for argv in (["review", "list"], ["worker"], ["db", "upgrade"]):
        code, _out, err = _run(argv, capsys)
        assert code == EXIT_CONFIG, (argv, err)
        line = _one_line(err)
        assert "BRIDGE_DATABASE_URL" in line
        assert SECRET not in line and "not a url" not in line


def test_an_unreachable_database_is_one_line_without_its_password(clean_env, capsys) -> None:
    clean_env.setenv("BRIDGE_DATABASE_URL", f"postgresql+psycopg://bridge:{SECRET}@127.0.0.1:{_unused_port()}/bridge")
    for argv in (["review", "list"], ["explain", "lrn_x"], ["republish"], ["db", "upgrade"]):
        code, _out, err = _run(argv, capsys)
        assert code == EXIT_UNAVAILABLE, (argv, err)
        line = _one_line(err)
        assert "did not answer" in line and "BRIDGE_DATABASE_URL" in line
        assert "bridge:***@127.0.0.1" in line and SECRET not in line


def test_the_worker_with_an_unreachable_database_is_one_line(clean_env, capsys, monkeypatch) -> None:
    # The broker check passes (it is not what is tested); the database then does not answer.
    import bridge.tools.connection

    monkeypatch.setattr(bridge.tools.connection, "check_broker", lambda settings, **_: None)
    clean_env.setenv("BRIDGE_BROKER_URL", f"kafka://127.0.0.1:{_unused_port()}")
    clean_env.setenv("BRIDGE_DATABASE_URL", f"postgresql://bridge:{SECRET}@127.0.0.1:{_unused_port()}/bridge")
    code, _out, err = _run(["worker"], capsys)
    assert code == EXIT_UNAVAILABLE
    line = _one_line(err)
    assert "did not answer" in line and SECRET not in line


@pytest.mark.parametrize("argv", [["review", "list"], ["review", "show", "rv_1"], ["explain", "lrn_x"]])
def test_a_read_only_command_on_a_missing_sqlite_file_says_so_and_creates_nothing(clean_env, tmp_path, capsys,
                                                                                    argv: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "bridge.db"
    clean_env.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{missing}")
    code, out, err = _run(argv, capsys)
    assert code == EXIT_UNAVAILABLE and out == ""
    line = _one_line(err)
    assert f"the database {missing} does not exist" in line and "BRIDGE_DATABASE_URL" in line
    assert not (tmp_path / "no").exists(), "a read-only command created a directory"


def test_a_database_without_the_schema_is_a_data_problem(clean_env, tmp_path, capsys) -> None:
    import sqlite3

    empty = tmp_path / "other.db"
    sqlite3.connect(empty).close()
    clean_env.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{empty}")
    code, _out, err = _run(["review", "list"], capsys)
    assert code == EXIT_DATA
    line = _one_line(err)
    assert "does not hold the bridge's schema" in line and "bridge db upgrade" in line


# -- Kafka and the standard output ---------------------------------------------------------------


def test_a_kafka_client_that_gives_up_is_one_line(clean_env, capsys, monkeypatch) -> None:
    clean_env.setenv("BRIDGE_BROKER_URL", "kafka://127.0.0.1:1")

    def no_broker(*_args, **_kwargs):
        raise kafka_errors.KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(subscriber.topicio, "consumer", no_broker)
    code, out, err = _run(["tail", "credit.records.v1"], capsys)
    assert code == EXIT_UNAVAILABLE and out == ""
    line = _one_line(err)
    assert "no Kafka broker answered at 127.0.0.1:1" in line and "BRIDGE_BROKER_URL" in line


def test_a_command_that_raises_something_unknown_keeps_its_traceback() -> None:
    assert cli.failure_of(RuntimeError("a bug"), 0.0) is None


class _ClosedPipe:
    """A standard output whose reader went away."""

    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise OSError("not a real file")


def test_tail_into_a_closed_pipe_ends_quietly(clean_env, capsys, monkeypatch) -> None:
    clean_env.setenv("BRIDGE_BROKER_URL", "kafka://127.0.0.1:1")
    closed = []

    def messages(*_args, **_kwargs):
        try:
            for offset in range(100):
                yield subscriber.Shown("credit.records.v1", 0, offset, None, b"k", b"{}")
        finally:
            closed.append(True)

    monkeypatch.setattr(subscriber, "tail_messages", messages)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = cli.main(["tail", "credit.records.v1", "--from-beginning"])
    assert code == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""
    assert closed == [True], "the consumer was not closed"


def test_the_leaf_parsers_are_the_runnable_commands() -> None:
    commands = dict(cli._leaf_parsers(cli.build_parser()))
    assert {"worker", "topics apply", "review list", "review keygen", "db upgrade", "tail"} <= set(commands)
    assert all(isinstance(p, argparse.ArgumentParser) for p in commands.values())
