"""Profiling the worker with py-spy (``pip install py-spy``; not a project dependency).

:class:`PySpy` samples a running process into py-spy's raw (collapsed-stack) format, and
:func:`summarise` turns that into the hot spots: where the samples are (self) and which
functions they pass through (inclusive), for the bridge's own code and its libraries.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: Samples per second: enough for stable shares over a few seconds, light on a two-core machine.
RATE = 100
#: A frame in py-spy's raw output: ``function (path/to/file.py:line)``.
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


class PySpy:
    """``py-spy record`` attached to a pid until :meth:`detach`."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.log = output.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def attach(self, pid: int) -> None:
        beside = Path(sys.executable).with_name("py-spy")  # a venv's scripts are not always on PATH
        binary = str(beside) if beside.exists() else shutil.which("py-spy")
        if binary is None:
            self.log.write_text("py-spy is not installed: pip install py-spy\n")
            return
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
                 "--threads", "--output", str(self.output)],
                stdout=log, stderr=subprocess.STDOUT,
            )

    def detach(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text.strip())
    if not match:
        return text.strip(), ""
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return match.group("func"), path


def summarise(raw: str, top: int = 30) -> str:
    """Sample shares per thread, then per function for each busy thread (self and inclusive)."""
    stacks: list[tuple[str, list[str], int]] = []
    threads: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith(("thread ", "process ")) else "(all)"
        names = [f"{func} ({path})" for func, path in (_frame(f) for f in frames) if path]
        stacks.append((thread, names, int(count_text)))
        threads[thread] += int(count_text)
    total = sum(threads.values())
    if not total:
        return "no samples\n"
    lines = [f"{total} samples at {RATE}/s", "", "by thread:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in threads.most_common(10)]
    for thread, thread_total in threads.most_common(2):
        self_counts: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        for name, names, count in stacks:
            if name != thread or not names:
                continue
            self_counts[names[-1]] += count
            for frame in set(names):
                inclusive[frame] += count
        lines += ["", f"== {thread}: {thread_total} samples; shares below are of this thread", ""]
        lines += [f"top {top} self (where the samples are):"]
        lines += [f"  {n / thread_total:6.1%}  {name}" for name, n in self_counts.most_common(top)]
        lines += ["", f"top {top} inclusive (bridge, adapters and topics code):"]
        ours = [(f, n) for f, n in inclusive.most_common() if re.search(r"\((bridge|adapters|topics)/", f)]
        lines += [f"  {n / thread_total:6.1%}  {name}" for name, n in ours[:top]]
        lines += ["", f"top {top} inclusive (libraries):"]
        theirs = [(f, n) for f, n in inclusive.most_common() if not re.search(r"\((bridge|adapters|topics|bench)/", f)]
        lines += [f"  {n / thread_total:6.1%}  {name}" for name, n in theirs[:top]]
    return "\n".join(lines) + "\n"
