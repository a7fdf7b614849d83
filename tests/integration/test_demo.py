"""``bridge demo`` as a user runs it: a fresh shell with no BRIDGE_* settings, one command, a summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import simulate

pytestmark = pytest.mark.integration

COUNT, SEED = 600, 7
#: Generous for 600 messages (the demo takes seconds); only a hung demo gets near it.
TIMEOUT_S = 240
REPO = Path(__file__).resolve().parents[2]


def _run_demo(workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    # Its own session, so that a hung demo is stopped together with its broker and worker.
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--count", str(COUNT), "--seed", str(SEED), "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"bridge demo did not finish within {TIMEOUT_S}s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _line(summary: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(.*)$", summary, re.MULTILINE)
    assert match, f"the summary has no {label!r} line:\n{summary}"
    return match.group(1)


def _number(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in {text!r}"
    return int(match.group(1))


def test_demo_runs_end_to_end_and_reports_a_consistent_summary(tmp_path: Path) -> None:
    _, expected = simulate.generate(COUNT, seed=SEED)
    workdir = tmp_path / "demo"
    done = _run_demo(workdir)
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, output
    summary = done.stdout
    assert "== bridge demo summary ==" in summary, output

    sent = _line(summary, "sent")
    assert _number(sent, r"^(\d+) messages") == COUNT
    assert _number(sent, r"(\d+) malformed") == expected.malformed

    events = _line(summary, "events processed")
    union, ou = _number(events, r"union (\d+)"), _number(events, r"open university (\d+)")
    assert union > 0 and ou > 0, summary
    # Every good event is processed once: redeliveries are not counted twice, bad input not at all.
    assert (union, ou) == (expected.union_events, expected.ou_events), summary

    links = _number(_line(summary, "cross-platform links"), r"^(\d+) learners")
    assert links > 0, summary
    assert links >= expected.linked_by_resident_id, summary

    records = _line(summary, "credit records")
    assert _number(records, r"AWARDED (\d+)") > 0, summary

    letters = _line(summary, "dead letters")
    assert _number(letters, r"^(\d+) on") == expected.malformed, summary

    assert (workdir / "bridge.db").is_file()
    assert (workdir / "worker.log").is_file()
    assert "worker exited with code 0" in summary, output
