"""The health page with several workers: two fake workers on loopback ports (one ready, one not)
and one that does not answer, each shown in its own row as it is."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.console.support import console_for, empty_registry, serving

READY_METRICS = """\
# HELP bridge_consumer_lag_messages Messages waiting on this worker's input partitions.
# TYPE bridge_consumer_lag_messages gauge
bridge_consumer_lag_messages{partition="0",topic="platform.union.events.v1"} 3.0
bridge_consumer_lag_messages{partition="1",topic="platform.union.events.v1"} 4.0
bridge_consumer_lag_messages_other 1000.0
# HELP bridge_review_items_open Review items waiting for an operator, by kind.
# TYPE bridge_review_items_open gauge
bridge_review_items_open{kind="ambiguous_match"} 2.0
bridge_review_items_open{kind="conflicting_document"} 1.0
"""


def worker(ready: bool) -> Starlette:
    async def readyz(request: Request) -> Response:
        if ready:
            return JSONResponse({"ready": True, "assigned": ["platform.union.events.v1[0]"], "partitions": 6,
                                 "database": True})
        return JSONResponse({"ready": False, "partitions": 0, "database": False,
                             "reason": "the database does not answer"}, status_code=503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(READY_METRICS if ready else "# nothing measured yet\n")

    return Starlette(routes=[Route("/readyz", readyz), Route("/metrics", metrics)])


@pytest.fixture
def workers() -> Iterator[tuple[str, str, str]]:
    with serving(Starlette()) as gone:
        pass  # answered a moment ago, closed now
    with serving(worker(True)) as ready, serving(worker(False)) as not_ready:
        yield ready, not_ready, gone


def rows(page: str) -> dict[str, list[str]]:
    table = page[page.index('<table id="workers">'):page.index("</table>")]
    found = {}
    for row in re.findall(r"<tr class=\"(\w+)\">(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)]
        found[cells[0]] = [row[0], *cells[1:]]
    return found


def test_the_health_page_shows_each_worker_as_it_is(tmp_path, workers) -> None:
    ready, not_ready, gone = workers
    console = console_for(tmp_path, empty_registry(tmp_path), console_workers=f" {ready}/, {not_ready} ,{gone},")
    console.sign_in("op-3")
    page = console.client.get("/health")
    assert page.status_code == 200
    shown = rows(page.text)
    # class, ready, partitions, database, lag, open reviews, why not ready
    assert shown == {
        ready: ["ok", "ready", "6", "answers", "7", "3", ""],
        not_ready: ["bad", "not ready", "0", "does not answer", "-", "-", "the database does not answer"],
        gone: ["bad", "no answer", "-", "-", "-", "-", "no answer (ConnectError)"],
    }
    assert list(shown) == [ready, not_ready, gone], "the workers are shown in the order configured"


def test_without_workers_the_page_says_how_to_configure_them(tmp_path) -> None:
    console = console_for(tmp_path, empty_registry(tmp_path))
    console.sign_in("op-3")
    assert "No workers configured (BRIDGE_CONSOLE_WORKERS)" in console.client.get("/health").text


def test_a_dns_name_stands_for_every_worker_it_resolves_to(tmp_path, monkeypatch) -> None:
    """``dns+http://NAME:PORT`` (a headless Service on Kubernetes): one row per address of NAME,
    each asked itself; a name that does not resolve is one row saying so."""
    from bridge.console import health

    with serving(worker(True)) as first:
        port = int(first.rsplit(":", 1)[1])
        with serving(worker(False), host="127.0.0.2", port=port) as second:
            names = {"bridge-worker-pods": ["127.0.0.2", "127.0.0.1", "127.0.0.2"]}

            async def resolve(host: str, port: int) -> list[str]:
                if host not in names:
                    raise OSError("unknown name")
                return names[host]

            monkeypatch.setattr(health, "_resolve", resolve)
            configured = f"dns+http://bridge-worker-pods:{port}, dns+http://gone:{port}"
            console = console_for(tmp_path, empty_registry(tmp_path), console_workers=configured)
            console.sign_in("op-3")
            shown = rows(console.client.get("/health").text)
    assert shown == {
        first: ["ok", "ready", "6", "answers", "7", "3", ""],
        second: ["bad", "not ready", "0", "does not answer", "-", "-", "the database does not answer"],
        f"dns+http://gone:{port}": ["bad", "no answer", "-", "-", "-", "-", "no address (OSError)"],
    }
    assert list(shown)[:2] == [first, second], "addresses in order, each once"


def test_a_dns_name_resolves_for_real_and_an_ip_literal_is_itself(tmp_path) -> None:
    import asyncio

    from bridge.console import health

    assert asyncio.run(health._expand("dns+http://127.0.0.1:6066/")) == [("http://127.0.0.1:6066/", None)]
    assert asyncio.run(health._expand("dns+http://[::1]:6066")) == [("http://[::1]:6066", None)]
    assert asyncio.run(health._expand("http://bridge-worker:6066")) == [("http://bridge-worker:6066", None)]
    ((url, problem),) = asyncio.run(health._expand("dns+ftp://127.0.0.1:21"))
    assert url == "dns+ftp://127.0.0.1:21" and problem == "no address (ValueError)"
