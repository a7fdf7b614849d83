"""``bridge console`` (serve the operators' console) and ``bridge console adduser`` (add an
operator, with a hashed password, to the operators file)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import stat
import sys
from pathlib import Path

from bridge.console.auth import MAX_PASSWORD, ROLES, hash_password, load_operators
from bridge.core.signing import OPERATOR_ID
from bridge.errors import UsageError
from bridge.settings import Settings

#: A shorter password is refused: operators decide who a learner is.
MIN_PASSWORD = 12


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bridge.cli import settings_epilog

    console = sub.add_parser(
        "console", help="serve the operators' web console on BRIDGE_CONSOLE_PORT (docs/console.md)",
        epilog=settings_epilog("console"),
    )
    console.set_defaults(fn=cmd_console)
    csub = console.add_subparsers(dest="console_command", required=False)
    add = csub.add_parser(
        "adduser", help="add an operator to the console's operators file, or change their role or password",
        description="Appends `OPERATOR ROLE HASH` to the file (created mode 0600), or replaces the operator's line "
        "when they are in it already (a new role or password). The password is read from the terminal twice, or from "
        "one line of standard input with --password-stdin; only its scrypt hash is kept.",
    )
    add.add_argument("operator", help="the operator id (also their `--by` and signing-key name)")
    add.add_argument("--role", choices=ROLES, required=True, help="viewer reads; reviewer also decides and replays")
    add.add_argument("--file", help="the operators file (default: BRIDGE_CONSOLE_OPERATORS)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--oidc-only", action="store_true", help="no password: the operator signs in through OpenID Connect")
    add.set_defaults(fn=cmd_adduser)


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.console.app import build_console
    from bridge.observability import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    for warning in settings.transport_warnings():
        logging.getLogger("bridge.console").warning("%s", warning)
    app = build_console(settings)
    console = app.state.console
    if not console.operators:
        print("bridge: no operator can sign in: set BRIDGE_CONSOLE_OPERATORS (`bridge console adduser`)", file=sys.stderr)
    print(f"the operators' console: http://{settings.console_host}:{settings.console_port}/ "
          f"({len(console.operators)} operators)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_level="warning",
                    access_log=False, proxy_headers=False, server_header=False)
    finally:
        console.close()
    return 0


def cmd_adduser(args: argparse.Namespace) -> int:
    if not OPERATOR_ID.fullmatch(args.operator):
        raise UsageError("OPERATOR: letters, digits and . _ @ - only, at most 128 characters")
    target = args.file or Settings().console_operators
    if target is None:
        raise UsageError("name the operators file: --file PATH, or set BRIDGE_CONSOLE_OPERATORS")
    path = Path(target)
    # A malformed file is refused before anything is asked or written (the error names the line).
    before = load_operators(path) if path.exists() else {}
    hashed = "-" if args.oidc_only else hash_password(_password(args.password_stdin))
    entry = f"{args.operator} {args.role} {hashed}\n"
    if args.operator in before:
        _replace(path, args.operator, entry)
        was = before[args.operator]
        change = f"role {was.role} -> {args.role}" if was.role != args.role else f"role {args.role}"
        how = "signs in through OpenID Connect only" if args.oidc_only else "new password"
        print(f"updated {args.operator} in {path}: {change}, {how} (restart the console to apply)")
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a+b") as handle:
            # A hand-edited file may end without a newline: the entry must not join its last line.
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - 1, 0))
            gap = b"\n" if size and handle.read(1) != b"\n" else b""
            handle.write(gap + entry.encode("utf-8"))
        print(f"added {args.operator} ({args.role}) to {path}")
    if args.role == "reviewer":
        print("a reviewer decides with their own signing key: put it in BRIDGE_CONSOLE_SIGNING_KEYS as "
              f"{args.operator}.pem (`bridge review keygen --operator {args.operator} --out ...`) and its public line "
              "in the workers' BRIDGE_OPERATOR_KEYS")
    return 0


def _replace(path: Path, operator: str, entry: str) -> None:
    """``path`` with ``operator``'s line replaced by ``entry`` (comments and other lines kept),
    written whole beside it and renamed over it, with the file's mode."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    words = [line.split("#", 1)[0].split() for line in lines]
    kept = [entry if w and w[0] == operator else (line if line.endswith("\n") else line + "\n")
            for line, w in zip(lines, words)]
    mode = stat.S_IMODE(path.stat().st_mode)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not password.isprintable():
        raise UsageError("the password must be printable text")
    return password
