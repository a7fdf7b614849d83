"""The system under test as a process: start and stop it, read its CPU time, peak memory and HTTP endpoints.

:mod:`bench.scenarios` measures through these; they know nothing of Kafka or of a scenario's phases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import BridgeError
from bridge.settings import Settings
from bridge.tools.broker import stop_process

ROOT = Path(__file__).resolve().parents[1]


class BenchError(BridgeError):
    """The benchmark could not measure a scenario; the message says where to look."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Process:
    """A system under test: a child process with its own log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, args: Sequence[str], env: dict[str, str], log_path: Path) -> Process:
        with log_path.open("wb") as log:
            popen = subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return cls(popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchError(f"the system under test exited with code {self.popen.returncode}; see {self.log_path}")

    def stop(self, timeout_s: float = 30.0) -> None:
        stop_process(self.popen, timeout_s)

    @property
    def pids(self) -> list[int]:
        return [self.pid]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.pid)


@dataclass
class ProcessGroup:
    """Several processes of one system under test (workers of one consumer group), seen as one:
    alive while all are, CPU summed, memory the largest single process (what a pod must hold)."""

    members: list[Process]

    @property
    def pid(self) -> int:
        return self.members[0].pid

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members]

    @property
    def log_path(self) -> Path:
        return self.members[0].log_path

    def check_alive(self) -> None:
        for member in self.members:
            member.check_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        for member in self.members:
            member.stop(timeout_s)

    def cpu_seconds(self) -> float:
        return sum(m.cpu_seconds() for m in self.members)

    def peak_rss_mb(self) -> float | None:
        peaks = [p for m in self.members if (p := m.peak_rss_mb()) is not None]
        return max(peaks) if peaks else None


def base_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "BENCH_"))}
    env.update(
        BRIDGE_BROKER_URL=settings.broker_url or "",
        BRIDGE_DATABASE_URL=settings.database_url,
        BRIDGE_WEB_PORT=str(settings.web_port),
        BRIDGE_WEB_HOST=settings.web_host,
        BRIDGE_GROUP_ID=settings.group_id,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    if settings.course_equivalences:
        env["BRIDGE_COURSE_EQUIVALENCES"] = str(settings.course_equivalences)
    return env


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def metric_values(text_format: str, name: str) -> dict[str, float]:
    """Samples of metric ``name`` in a Prometheus text exposition, by their label string."""
    found = {}
    for line in text_format.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            rest = head[len(name):]
            if rest == "" or rest.startswith("{"):
                found[rest] = float(value)
    return found
