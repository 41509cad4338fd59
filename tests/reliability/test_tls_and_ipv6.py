"""TLS (server-only and mutual) with certificates made in the test, and IPv6."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from netaio_client import TCPClient
from netaio_core import Message, MessageType

from .conftest import Connect, Serve
from .support import TIMEOUT, echo_reply, echo_server, request, summary


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param(
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(
            not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)"
        ),
    ),
]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def other_ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *, mutual: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(context)
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    return context


def client_context(trusted: trustme.CA, cert_from: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    trusted.configure_trust(context)
    if cert_from is not None:
        cert_from.issue_cert("client@netaio.test").configure_cert(context)
    return context


async def exchange(client: TCPClient[Message], content: bytes) -> Message:
    await client.send(request(content))
    reply = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert reply is not None
    return reply


@pytest.mark.parametrize("host", HOSTS)
async def test_plain_exchange(serve: Serve, host: str) -> None:
    server = await serve(echo_server(host=host))
    client: TCPClient[Message] = TCPClient(host, server.port)
    async with client:
        await client.connect()
        assert summary(await exchange(client, b"plain")) == echo_reply(b"plain")
        peer = next(iter(server.clients)).get_extra_info("peername")
        assert peer[0] == host


@pytest.mark.parametrize("host", HOSTS)
async def test_server_only_tls(serve: Serve, ca: trustme.CA, host: str) -> None:
    server = await serve(echo_server(host=host, ssl=server_context(ca)))
    client: TCPClient[Message] = TCPClient(host, server.port)
    async with client:
        # The certificate names the address too, so server_hostname may be left out.
        await client.connect(ssl=client_context(ca))
        assert summary(await exchange(client, b"secret")) == echo_reply(b"secret")
        writer = client.hosts[(host, server.port)][1]
        assert writer.get_extra_info("ssl_object") is not None

        await client.connect(host, server.port)  # already connected: kept as it is
        assert client.hosts[(host, server.port)][1] is writer


async def test_server_hostname_is_verified(serve: Serve, ca: trustme.CA) -> None:
    server = await serve(echo_server(ssl=server_context(ca)))
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    async with client:
        await client.connect(ssl=client_context(ca), server_hostname="localhost")
        assert summary(await exchange(client, b"named")) == echo_reply(b"named")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        await client.connect(ssl=client_context(ca), server_hostname="elsewhere.test")
    assert not client.hosts


async def test_client_that_does_not_trust_the_ca_fails(
    serve: Serve, ca: trustme.CA, other_ca: trustme.CA
) -> None:
    server = await serve(echo_server(ssl=server_context(ca)))
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.connect(ssl=client_context(other_ca))
    assert not client.hosts
    assert not server.clients


async def test_plaintext_client_gets_nothing_from_a_tls_server(
    serve: Serve, connect: Connect, ca: trustme.CA
) -> None:
    server = await serve(echo_server(ssl=server_context(ca)))
    peer = await connect(server.port)
    await peer.send_bytes(request(b"in clear").encode())
    assert await peer.wait_closed_by_server() == b""
    assert not server.clients


async def test_mutual_tls_admits_a_client_with_a_certificate(serve: Serve, ca: trustme.CA) -> None:
    server = await serve(echo_server(ssl=server_context(ca, mutual=True)))
    subjects: list[object] = []

    @server.on((MessageType.REQUEST_URI, b"whoami"))
    def whoami(message: Message, writer: asyncio.StreamWriter) -> Message:
        subjects.append(writer.get_extra_info("peercert"))
        return request(b"", b"whoami", MessageType.RESPOND_URI)

    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    async with client:
        await client.connect(ssl=client_context(ca, cert_from=ca))
        assert summary(await exchange(client, b"mutual")) == echo_reply(b"mutual")
        await client.send(request(b"", b"whoami"))
        assert await asyncio.wait_for(client.receive_once(), TIMEOUT) is not None
    (peercert,) = subjects
    assert isinstance(peercert, dict)
    assert ("email", "client@netaio.test") in peercert["subjectAltName"]


@pytest.mark.parametrize(
    "cert", [pytest.param(False, id="no-cert"), pytest.param(True, id="cert-of-another-ca")]
)
async def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    serve: Serve, ca: trustme.CA, other_ca: trustme.CA, cert: bool
) -> None:
    server = await serve(echo_server(ssl=server_context(ca, mutual=True)))
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)

    async def knock() -> Message | None:
        await client.connect(ssl=client_context(ca, cert_from=other_ca if cert else None))
        await client.send(request(b"let me in"))
        return await asyncio.wait_for(client.receive_once(), TIMEOUT)

    # Under TLS 1.3 the client finishes its side of the handshake before the
    # server checks the certificate: the refusal surfaces on connect or on
    # the first read, never as an answer.
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await knock()
    finally:
        await asyncio.wait_for(client.close_all(), TIMEOUT)
    assert not server.clients
