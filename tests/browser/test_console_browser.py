"""The operators' console in a real browser (issue 16): Debian's chromium, headless, driven by
Playwright, against a real worker, broker and database. An operator signs in, filters the queue,
links the account of a review item to a candidate, and sees the learner change once the worker
has applied the signed decision; the queue is then empty.

With ``TEST_CONSOLE_SCREENSHOTS=DIR`` the main pages are also saved as PNGs in DIR (the
screenshots of ``docs/console/`` are made so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.tools.broker import free_port
from tests.console.support import PASSWORD, write_operators
from tests.integration.harness import Bridge
from tests.integration.test_identity import D1, D2, OU, UNION, ou_with_doc, union_docless

pytestmark = pytest.mark.integration

#: Flags for a headless chromium in a container: no sandbox (root), no GPU, nothing fetched from outside.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium() -> str:
    found = os.environ.get("TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make test` installs it with .ci/chromium.sh")
        pytest.skip("chromium is not installed (bash .ci/chromium.sh)")
    return found


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def bridge(tmp_path) -> Iterator[Bridge]:
    b = Bridge(tmp_path, f"sqlite:///{tmp_path / 'bridge.db'}")
    try:
        yield b
    finally:
        b.close()


def family_phone(bridge: Bridge) -> int:
    """The family-phone case of tests/integration/test_identity.py (one ``ambiguous_match`` item),
    processed by a worker whose web port is returned."""
    bridge.send(OU, "S1", ou_with_doc("o-1", "S1", D1))
    bridge.send(OU, "S2", ou_with_doc("o-2", "S2", D2, course="NOU-09000"))
    bridge.send(UNION, "GH1", union_docless("u-1", "GH1", minutes=5))
    port = free_port()
    bridge.start_worker(BRIDGE_WEB_PORT=str(port))
    bridge.settle()
    return port


def start_console(bridge: Bridge, workdir: Path, worker_port: int) -> tuple[subprocess.Popen[bytes], str]:
    """``bridge console`` on the bridge's broker and database, as the reviewer op-17 and viewer op-3."""
    port = free_port()
    operators = write_operators(workdir / "console-operators", **{"op-17": "reviewer", "op-3": "viewer"})
    env = bridge.env(
        BRIDGE_CONSOLE_PORT=str(port), BRIDGE_CONSOLE_OPERATORS=str(operators),
        BRIDGE_CONSOLE_SIGNING_KEYS=str(bridge.signing_keys["op-17"].parent),
        BRIDGE_CONSOLE_WORKERS=f"http://127.0.0.1:{worker_port}",
    )
    log = (workdir / "console.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "bridge", "console"], env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/signin", timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the console did not start:\n" + (workdir / "console.log").read_text())
        time.sleep(0.2)


def test_an_operator_works_the_queue_to_empty_in_the_browser(bridge: Bridge, browser, tmp_path) -> None:
    worker_port = family_phone(bridge)
    (review,) = bridge.reviews()
    candidates = review["candidates"]
    process, url = start_console(bridge, tmp_path, worker_port)
    shots = os.environ.get("TEST_CONSOLE_SCREENSHOTS")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page.goto(f"{url}/queue")
        assert page.url.endswith("/signin"), "nothing but the sign-in page before sign-in"
        page.fill("input[name=operator]", "op-17")
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_load_state()
        assert page.url == f"{url}/queue", page.content()[:3000]
        assert page.inner_text("#whoami") == "op-17 (reviewer)"
        assert page.inner_text("#total") == "1"

        page.select_option("select[name=kind]", "conflicting_document")
        page.click("#filters button[type=submit]")
        page.wait_for_selector("#empty")
        page.select_option("select[name=kind]", "ambiguous_match")
        page.click("#filters button[type=submit]")
        page.wait_for_selector(f"tr[data-review='{review['review_id']}']")
        if shots:
            page.screenshot(path=f"{shots}/queue.png", full_page=True)

        page.click(f"a[href='/reviews/{review['review_id']}']")
        page.wait_for_selector(".side.candidate")
        assert "name and mobile" in page.inner_text(".side.account")
        if shots:
            page.screenshot(path=f"{shots}/item.png", full_page=True)
        chosen = candidates[0]
        page.fill(f".side.candidate[data-learner='{chosen}'] input[name=note]", "same person, confirmed by phone")
        page.click(f"#link-{chosen}")
        page.wait_for_selector("#flash")
        assert "signed as op-17 and published" in page.inner_text("#flash")
        assert "decided, waiting for the worker" in page.inner_text("main")

        bridge.settle()
        account = f"{review['account']['platform']}:{review['account']['account']}"
        page.goto(f"{url}/learners?subject={account}")
        page.wait_for_selector("#learner-id")
        assert page.inner_text("#learner-id") == chosen
        assert "operator" in page.inner_text("#accounts")
        assert "op-17" in page.inner_text("#decisions")
        if shots:
            page.screenshot(path=f"{shots}/learner.png", full_page=True)

        page.goto(f"{url}/queue")
        page.wait_for_selector("#empty")
        assert page.inner_text("#total") == "0"
        page.goto(f"{url}/health")
        page.wait_for_selector("#workers")
        assert "ready" in page.inner_text("#workers")
        if shots:
            page.screenshot(path=f"{shots}/health.png", full_page=True)
        page.goto(f"{url}/deadletters")
        page.wait_for_selector("#dl-total")
        if shots:
            page.screenshot(path=f"{shots}/deadletters.png", full_page=True)
        page.click("button:has-text('Sign out')")
        page.wait_for_url(f"{url}/signin")
        if shots:
            page.screenshot(path=f"{shots}/signin.png")
    finally:
        process.terminate()
        process.wait(timeout=10)
