"""The console's dead-letter and health pages: what ``bridge deadletters`` reads and replays,
and each worker's ``/readyz`` and ``/metrics``.

Dead letters are shown by reason code and source topic, with their coordinates, times and sizes,
never their payloads. A replay goes through ``bridge deadletters replay``'s own function (its
selection, opening and re-sending) on the console's settings, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bridge.commands import deadletters as commands
from bridge.settings import Settings

#: Dead letters listed on the page, newest first (the counts cover all of them).
SHOWN = 100
#: How long the health page waits for a worker's answer (and for a ``dns+`` name to resolve).
WORKER_TIMEOUT_S = 2.0
#: ``BRIDGE_CONSOLE_WORKERS`` entries with this prefix stand for every address of their host.
DNS_PREFIX = "dns+"
_REPLAYING = threading.Lock()
_RESENT = re.compile(r"re-sent \S+ as \S+")


@dataclass
class DeadLetters:
    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    latest: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


def dead_letters(settings: Settings) -> DeadLetters:
    """Every dead letter on the topic, counted by reason and topic, the newest listed."""
    if not settings.broker_url:
        return DeadLetters(problem="BRIDGE_BROKER_URL is not set: the console cannot read bridge.deadletter.v1")
    try:
        letters = list(commands.read_letters(settings))
    except Exception as exc:  # noqa: BLE001 - the page says the broker did not answer, and why
        return DeadLetters(problem=f"cannot read bridge.deadletter.v1: {exc.__class__.__name__}")
    letters.sort(key=lambda x: (commands._utc(x.letter.dead_lettered_at), x.where), reverse=True)  # noqa: SLF001
    latest = [
        {"where": item.where, "reason_code": item.letter.reason_code, "reason": item.letter.reason,
         "at": item.letter.dead_lettered_at, "size": item.letter.payload_bytes,
         "carried": item.letter.payload_encrypted is not None}
        for item in letters[:SHOWN]
    ]
    return DeadLetters(
        total=len(letters),
        by_reason=dict(sorted(Counter(x.letter.reason_code for x in letters).items())),
        by_topic=dict(sorted(Counter(x.letter.topic for x in letters).items())),
        latest=latest,
    )


def replay(settings: Settings, reason_code: str) -> list[str]:
    """``bridge deadletters replay --reason-code CODE`` on the console's broker: its report, line
    by line (the first 20)."""
    if not settings.broker_url:
        return ["BRIDGE_BROKER_URL is not set: the console cannot replay dead letters"]
    args = argparse.Namespace(reason_code=[reason_code], topic=None, since=None, until=None, coordinates=[],
                              all=False, dry_run=False)
    lines: list[str] = []
    # One replay at a time (a replay repeated is harmless, but two at once would interleave their sends).
    with _REPLAYING:
        commands.replay(settings, args, report=lines.append)
    # The count and what could not be re-sent first; then where each letter went, as space allows.
    each = [line for line in lines if _RESENT.fullmatch(line)]
    return ([line.strip() for line in lines if line.strip() and line not in each] + each)[:20]


@dataclass
class WorkerHealth:
    url: str
    ready: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    lag: float | None = None
    open_reviews: float | None = None
    problem: str | None = None


async def workers(settings: Settings) -> list[WorkerHealth]:
    """Each configured worker's readiness, lag (the sum over its partitions) and open reviews.

    A URL written ``dns+http://NAME:PORT`` stands for every address ``NAME`` resolves to, one
    worker each: on Kubernetes a headless Service of the workers' pods, so the page shows every
    pod rather than whichever one a Service's address reaches."""
    import httpx

    configured = [u.strip().rstrip("/") for u in settings.console_workers.split(",") if u.strip()]
    found = await asyncio.gather(*(_expand(url) for url in configured))
    async with httpx.AsyncClient(timeout=WORKER_TIMEOUT_S) as client:
        return list(await asyncio.gather(*(
            _worker(client, url) if problem is None else _unresolved(url, problem)
            for urls in found for url, problem in urls
        )))


async def _unresolved(url: str, problem: str) -> WorkerHealth:
    return WorkerHealth(url, problem=problem)


async def _expand(url: str) -> list[tuple[str, str | None]]:
    """``url``, or for ``dns+`` the URLs of every address its host resolves to (sorted), each with
    ``None``; or the URL with the reason it names no worker."""
    if not url.startswith(DNS_PREFIX):
        return [(url, None)]
    target = urlsplit(url[len(DNS_PREFIX):])
    try:
        port = target.port or (443 if target.scheme == "https" else 80)
        host = target.hostname
        if not host or target.scheme not in ("http", "https"):
            raise ValueError("not an http(s) URL")
        addresses = sorted({ipaddress.ip_address(a) for a in await _resolve(host, port)}, key=lambda a: (a.version, a))
    except (OSError, ValueError, TimeoutError) as exc:
        return [(url, f"no address ({exc.__class__.__name__})")]
    return [(urlunsplit((target.scheme, f"{_host(a)}:{port}", target.path, "", "")), None) for a in addresses]


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (A and AAAA records)."""
    infos = await asyncio.wait_for(
        asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), WORKER_TIMEOUT_S
    )
    return [str(info[4][0]) for info in infos]


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


async def _worker(client: Any, url: str) -> WorkerHealth:
    import httpx

    result = WorkerHealth(url)
    try:
        ready = await client.get(f"{url}/readyz")
        body = ready.json()
        result.ready = bool(body.get("ready"))
        result.detail = {k: body[k] for k in ("assigned", "partitions", "database", "pending", "failing", "reason") if k in body}
        metrics = await client.get(f"{url}/metrics")
        result.lag = _sum(metrics.text, "bridge_consumer_lag_messages")
        result.open_reviews = _sum(metrics.text, "bridge_review_items_open")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        result.problem = f"no answer ({exc.__class__.__name__})"
    return result


def _sum(text: str, name: str) -> float | None:
    """The sum of the samples of metric ``name`` in a Prometheus text exposition."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            with contextlib.suppress(ValueError, IndexError):
                total += float(line.rsplit(" ", 1)[1])
                seen = True
    return total if seen else None
