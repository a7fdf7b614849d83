"""``bridge demo`` as a user runs it: a fresh shell with no BRIDGE_* settings, one command, a summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import adapters
from bridge.tools import simulate

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
    # Every good event is processed once: redeliveries are not counted twice, bad input not at all.
    # The demo also sends a few people for the operators (simulate.review_cases).
    cases = simulate.review_cases()
    platforms = adapters.registered()
    assert len(platforms) == 3 and set(expected.events) == {a.name for a in platforms}
    for adapter in platforms:
        processed = _number(events, rf"(?:^|, ){re.escape(adapter.label)} (\d+)")
        from_cases = sum(1 for m in cases if m.topic == adapter.topic.name)
        assert processed == expected.events[adapter.name] + from_cases > 0, summary
    assert _number(_line(summary, "review items"), r"^(\d+) on") >= 2, summary

    # Every person whose accounts sent one valid resident ID is one learner: the learners on
    # several platforms, and on all of them, are at least as many.
    links = _line(summary, "cross-platform links")
    several, on_all = _number(links, r"^(\d+) learners hold accounts on 2\+ platforms"), _number(links, r"(\d+) on all 3$")
    assert several >= expected.linked_by_resident_id > 0, summary
    assert on_all >= sum(1 for person in expected.linked if len(person) == 3) > 0, summary

    records = _line(summary, "credit records")
    assert _number(records, r"AWARDED (\d+)") > 0, summary

    letters = _line(summary, "dead letters")
    assert _number(letters, r"^(\d+) on") == expected.malformed, summary

    assert (workdir / "bridge.db").is_file()
    assert (workdir / "worker.log").is_file()
    assert "worker exited with code 0" in summary, output


def test_a_kept_demo_is_a_practice_ground_for_the_operators_commands(tmp_path: Path) -> None:
    """``bridge demo --keep``: after the summary the broker, worker and database stay up; the
    settings it prints let a newcomer review, decide, backfill and read dead letters; Ctrl-C ends it."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--count", "300", "--seed", "5", "--workdir", str(tmp_path / "demo"),
         "--keep"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        guide = []
        deadline = time.monotonic() + TIMEOUT_S
        for line in process.stdout:
            guide.append(line)
            if "Press Ctrl-C" in line:
                break
            assert time.monotonic() < deadline, "".join(guide)
        exports = dict(re.findall(r"^export (BRIDGE_\w+)=(\S+)$", "".join(guide), re.MULTILINE))
        assert set(exports) == {"BRIDGE_BROKER_URL", "BRIDGE_DATABASE_URL", "BRIDGE_OPERATOR_SIGNING_KEY"}, guide
        shell = {**env, **exports}

        def bridge(*argv: str) -> str:
            done = subprocess.run([sys.executable, "-m", "bridge", *argv], cwd=tmp_path, env=shell,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"bridge {' '.join(argv)}: {done.stderr}"
            return done.stdout

        items = json.loads(bridge("review", "list", "--json"))
        kinds = sorted(item["kind"] for item in items)
        assert kinds == ["ambiguous_match", "conflicting_document"], items
        (ambiguous,) = [item for item in items if item["kind"] == "ambiguous_match"]
        chosen = ambiguous["candidates"][0]
        bridge("review", "link", ambiguous["review_id"], "--learner", chosen, "--by", "demo-operator")
        history = re.search(r"^bridge backfill (\S+)", "".join(guide), re.MULTILINE).group(1)
        assert "== backfill summary ==" in subprocess.run(
            [sys.executable, "-m", "bridge", "backfill", history, "--state-dir", str(tmp_path / "state")],
            cwd=tmp_path, env=shell, capture_output=True, text=True, timeout=300, check=True,
        ).stderr
        assert bridge("deadletters", "list").strip()
        # The worker applies the signed decision: the docless account joins the chosen learner.
        deadline = time.monotonic() + 60
        while True:
            explained = json.loads(bridge("explain", simulate.review_account(), "--json"))
            if explained.get("learner_id") == chosen:
                break
            assert time.monotonic() < deadline, explained
            time.sleep(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert code == 0
