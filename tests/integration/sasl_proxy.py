"""A SASL/SCRAM gate in front of the embedded broker, for the tests of issue 12.

tansu 0.6 keeps SCRAM users in memory (in memory and S3 storage alike), and with
``--authentication`` it refuses the unauthenticated request that would create the first one, so
it cannot require authentication from the clients here. This gate does what a SASL listener of a
Kafka broker does, for real, and nothing else: it answers the Kafka protocol's ``SaslHandshake``
and ``SaslAuthenticate`` requests with a SCRAM server (the ``scramp`` library, SHA-256 and
SHA-512, salted credentials as Kafka stores them), refuses every other request before
authentication by closing the connection (as Kafka does), answers a failed authentication with
``SASL_AUTHENTICATION_FAILED``, and once a client is authenticated relays its bytes to tansu
unchanged. tansu advertises the gate's port, so every connection a client opens goes through it.

Only the framing of these two requests is parsed (request header v1/v2, SaslHandshake v0-1,
SaslAuthenticate v0-2); ``ApiVersions`` before authentication is relayed to tansu.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from scramp import ScramException, ScramMechanism

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
#: Kafka's own default of connection.failed.authentication.delay.ms.
FAILED_AUTHENTICATION_DELAY_S = 0.1


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _skip_tags(data: bytes, at: int) -> int:
    count, at = _uvarint(data, at)
    for _ in range(count):
        _tag, at = _uvarint(data, at)
        size, at = _uvarint(data, at)
        at += size
    return at


@dataclass
class Request:
    api_key: int
    version: int
    correlation: int
    body: bytes

    @classmethod
    def parse(cls, frame: bytes) -> Request:
        api_key, version, correlation, client_len = struct.unpack_from(">hhih", frame, 0)
        at = 10 + max(client_len, 0)
        if api_key == SASL_AUTHENTICATE and version >= 2:  # flexible: header v2 has tagged fields
            at = _skip_tags(frame, at)
        return cls(api_key, version, correlation, frame[at:])


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def handshake_response(request: Request, error: int) -> bytes:
    body = struct.pack(">ih", request.correlation, error) + struct.pack(">i", len(MECHANISMS))
    for name in MECHANISMS:
        body += struct.pack(">h", len(name)) + name.encode()
    return _frame(body)


def authenticate_response(request: Request, error: int, message: str | None, token: bytes) -> bytes:
    if request.version >= 2:
        text = b"\x00" if message is None else _put_uvarint(len(message.encode()) + 1) + message.encode()
        body = (struct.pack(">i", request.correlation) + b"\x00" + struct.pack(">h", error) + text
                + _put_uvarint(len(token) + 1) + token + struct.pack(">q", 0) + b"\x00")
        return _frame(body)
    text = struct.pack(">h", -1) if message is None else struct.pack(">h", len(message.encode())) + message.encode()
    body = struct.pack(">ih", request.correlation, error) + text + struct.pack(">i", len(token)) + token
    if request.version >= 1:
        body += struct.pack(">q", 0)
    return _frame(body)


def auth_token(request: Request) -> bytes:
    if request.version >= 2:
        size, at = _uvarint(request.body, 0)
        return request.body[at:at + size - 1]
    (size,) = struct.unpack_from(">i", request.body, 0)
    return request.body[4:4 + size]


@dataclass
class SaslGate:
    """Listens on ``port`` and relays authenticated connections to tansu at ``upstream_port``."""

    port: int
    upstream_port: int
    users: dict[str, str]
    """Username to password; each gets SCRAM credentials for both mechanisms."""
    attempts: list[tuple[str, bool]] = field(default_factory=list)
    """(username, succeeded) of every authentication, for the tests to check."""

    def __post_init__(self) -> None:
        self._credentials = {
            mechanism: {name: ScramMechanism(mechanism).make_auth_info(password, iteration_count=4096)
                        for name, password in self.users.items()}
            for mechanism in MECHANISMS
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sasl-gate", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> SaslGate:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop
        ).result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _lookup(self, mechanism: str) -> Callable[[str], tuple]:
        def credentials(username: str) -> tuple:
            found = self._credentials[mechanism].get(username)
            if found is None:
                raise ScramException("unknown user")
            return found
        return credentials

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        try:
            if await self._authenticate(reader, writer, up_reader, up_writer):
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, struct.error, IndexError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _authenticate(self, reader, writer, up_reader, up_writer) -> bool:
        mechanism: str | None = None
        server = None
        username = ""
        while True:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            frame = await reader.readexactly(size)
            request = Request.parse(frame)
            if request.api_key == API_VERSIONS:
                up_writer.write(_frame(frame))
                await up_writer.drain()
                (answer,) = struct.unpack(">i", await up_reader.readexactly(4))
                writer.write(_frame(await up_reader.readexactly(answer)))
            elif request.api_key == SASL_HANDSHAKE:
                (length,) = struct.unpack_from(">h", request.body, 0)
                asked = request.body[2:2 + length].decode()
                ok = asked in MECHANISMS
                mechanism = asked if ok else None
                writer.write(handshake_response(request, 0 if ok else UNSUPPORTED_SASL_MECHANISM))
                if not ok:
                    await writer.drain()
                    return False
            elif request.api_key == SASL_AUTHENTICATE and mechanism is not None:
                token = auth_token(request).decode()
                try:
                    if server is None:
                        server = ScramMechanism(mechanism).make_server(self._lookup(mechanism))
                        username = next((part[2:] for part in token.split(",") if part.startswith("n=")), "")
                        server.set_client_first(token)
                        writer.write(authenticate_response(request, 0, None, server.get_server_first().encode()))
                    else:
                        server.set_client_final(token)
                        writer.write(authenticate_response(request, 0, None, server.get_server_final().encode()))
                        await writer.drain()
                        self.attempts.append((username, True))
                        return True
                except ScramException:
                    self.attempts.append((username, False))
                    writer.write(authenticate_response(
                        request, SASL_AUTHENTICATION_FAILED,
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism "
                        + mechanism, b"",
                    ))
                    await writer.drain()
                    # As Kafka does (connection.failed.authentication.delay.ms), close a moment
                    # later: the client reads the error before it sees the connection end.
                    await asyncio.sleep(FAILED_AUTHENTICATION_DELAY_S)
                    return False
            else:
                # Kafka closes a connection that sends anything else before authenticating.
                return False
            await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        sink.close()
