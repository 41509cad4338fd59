"""Our TCPClient with our TCPServer on loopback: requests, HMAC auth, pub/sub."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from netaio import (
    Body,
    HMACAuthPlugin,
    Message,
    MessageType,
    TCPClient,
    TCPServer,
)
from netaio_core.binding import FROM_CLIENT, set_route

TIMEOUT = 5.0


def msg(uri: bytes, content: bytes = b"", kind: MessageType = MessageType.REQUEST_URI) -> Message:
    return Message.prepare(Body.prepare(content, uri), kind)


@pytest.fixture
async def server() -> AsyncIterator[TCPServer[Message]]:
    """An echo and pub/sub server: REQUEST_URI b"echo" answers its content;
    SUBSCRIBE_URI / UNSUBSCRIBE_URI (un)subscribe to the uri and confirm."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return msg(b"echo", message.body.content, MessageType.RESPOND_URI)

    @server.on(MessageType.SUBSCRIBE_URI)
    def subscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        server.subscribe(message.body.uri, writer)
        return msg(message.body.uri, b"", MessageType.CONFIRM_SUBSCRIBE)

    @server.on(MessageType.UNSUBSCRIBE_URI)
    def unsubscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        server.unsubscribe(message.body.uri, writer)
        return msg(message.body.uri, b"", MessageType.CONFIRM_UNSUBSCRIBE)

    async with server:
        yield server


async def request(client: TCPClient[Message], message: Message) -> Message | None:
    await client.send(message)
    return await asyncio.wait_for(client.receive_once(), TIMEOUT)


async def test_request_response_and_not_found(server):
    async with TCPClient(port=server.port) as client:
        await client.connect()
        reply = await request(client, msg(b"echo", b"hello"))
        missing = await request(client, msg(b"nowhere", b"?"))

    assert reply is not None
    assert (reply.header.message_type, reply.body.content) == (MessageType.RESPOND_URI, b"hello")
    assert missing is not None
    assert missing.header.message_type is MessageType.NOT_FOUND


async def test_client_handler_result_is_returned(server):
    async with TCPClient(port=server.port) as client:

        @client.on((MessageType.RESPOND_URI, b"echo"))
        def decode(message: Message, writer: asyncio.StreamWriter) -> Message:
            return msg(b"decoded", message.body.content.decode().upper().encode(), MessageType.OK)

        await client.connect()
        reply = await request(client, msg(b"echo", b"abc"))

    assert reply is not None
    assert (reply.body.uri, reply.body.content) == (b"decoded", b"ABC")


async def test_one_client_two_servers(server):
    other: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    other.add_handler(
        MessageType.REQUEST_URI, lambda m, w: msg(b"other", b"from other", MessageType.RESPOND_URI)
    )
    async with other, TCPClient(port=server.port) as client:
        await client.connect()
        await client.connect("127.0.0.1", other.port)
        second = ("127.0.0.1", other.port)
        await client.send(msg(b"echo", b"first"))
        await client.send(msg(b"echo", b"second"), server=second)
        from_other = await asyncio.wait_for(client.receive_once(second), TIMEOUT)
        from_first = await asyncio.wait_for(client.receive_once(), TIMEOUT)

    assert from_other is not None
    assert from_other.body.content == b"from other"
    assert from_first is not None
    assert from_first.body.content == b"first"


# -- HMAC auth ---------------------------------------------------------------

OUTER_SECRET = "outer secret shared by every peer"
INNER_SECRET = "inner secret of the admin route"
INNER_FIELDS = {"hmac_field": "admin_hmac", "nonce_field": "admin_nonce", "ts_field": "admin_ts"}


@pytest.fixture
async def auth_server() -> AsyncIterator[tuple[TCPServer[Message], list[bytes]]]:
    """Instance plugin on every message; a second plugin, with field names
    of its own, on (REQUEST_URI, b"admin")."""
    calls: list[bytes] = []
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, auth_plugin=HMACAuthPlugin({"secret": OUTER_SECRET})
    )

    @server.on(
        (MessageType.REQUEST_URI, b"admin"),
        HMACAuthPlugin({"secret": INNER_SECRET, **INNER_FIELDS}),
    )
    def admin(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return msg(b"admin", b"admin ok", MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return msg(b"echo", message.body.content, MessageType.RESPOND_URI)

    async with server:
        yield server, calls


def admin_client(
    port: int, outer: str = OUTER_SECRET, inner: str = INNER_SECRET
) -> tuple[TCPClient[Message], HMACAuthPlugin]:
    """A client signing with the instance plugin, which checks the admin
    route's replies with the admin plugin as well."""
    inner_plugin = HMACAuthPlugin({"secret": inner, **INNER_FIELDS})
    client: TCPClient[Message] = TCPClient(
        port=port,
        auth_plugin=HMACAuthPlugin({"secret": outer}),
        handlers={(MessageType.RESPOND_URI, b"admin"): (lambda m, w: None, inner_plugin)},
    )
    return client, inner_plugin


async def test_hmac_instance_and_handler_plugins_sign_and_check_both_ways(auth_server):
    server, calls = auth_server
    client, inner = admin_client(server.port)
    async with client:
        await client.connect()
        echo = await request(client, msg(b"echo", b"plain"))
        admin_request = msg(b"admin", b"let me in")
        # The route's own signature, over the routing field the client's
        # send() sets (HMACAuthPlugin binds routing: see netaio_core.binding).
        set_route(admin_request, FROM_CLIENT)
        inner.make(admin_request.auth_data, admin_request.body)
        admin = await request(client, admin_request)

    assert echo is not None
    assert echo.body.content == b"plain"
    assert set(echo.auth_data.fields) == {"hmac", "nonce", "ts", "rt"}
    assert admin is not None
    assert admin.body.content == b"admin ok"
    # The reply carries both signatures, side by side.
    assert set(admin.auth_data.fields) == {"hmac", "nonce", "ts", "rt", *INNER_FIELDS.values()}
    assert calls == [b"plain", b"let me in"]


async def test_hmac_client_with_the_wrong_secret_is_rejected(auth_server):
    server, calls = auth_server
    # Signs with the wrong secret and checks nothing: it sees the AUTH_ERROR.
    async with TCPClient(port=server.port) as intruder:
        await intruder.connect()
        forged = msg(b"echo", b"forged")
        HMACAuthPlugin({"secret": "wrong secret"}).make(forged.auth_data, forged.body)
        refused = await request(intruder, forged)
        unsigned = await request(intruder, msg(b"echo", b"unsigned"))

    # With the wrong secret in its own plugin, the server's AUTH_ERROR reply
    # fails the client's check too, so receive_once discards it.
    wrong, _ = admin_client(server.port, outer="wrong secret")
    async with wrong:
        await wrong.connect()
        discarded = await request(wrong, msg(b"echo", b"wrong"))

    for reply in (refused, unsigned):
        assert reply is not None
        assert reply.header.message_type is MessageType.AUTH_ERROR
        assert reply.body.content == b"HMAC auth failed"
    assert discarded is None
    assert calls == []


async def test_hmac_wrong_handler_secret_is_rejected_by_that_route_only(auth_server):
    server, calls = auth_server
    client, inner = admin_client(server.port, inner="not the admin secret")
    async with client:
        await client.connect()
        admin_request = msg(b"admin", b"let me in")
        inner.make(admin_request.auth_data, admin_request.body)
        refused = await request(client, admin_request)
        echo = await request(client, msg(b"echo", b"still fine"))

    assert refused is not None  # signed by the server's instance plugin: accepted
    assert refused.header.message_type is MessageType.AUTH_ERROR
    assert refused.body.content == b"HMAC auth failed"
    assert echo is not None
    assert echo.body.content == b"still fine"
    assert calls == [b"still fine"]


# -- pub/sub -------------------------------------------------------------------


async def test_subscribe_notify_unsubscribe_with_receive_loop(server):
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    confirmed: dict[str, asyncio.Queue[MessageType]] = {"a": asyncio.Queue(), "b": asyncio.Queue()}
    clients = {name: TCPClient[Message](port=server.port) for name in got}
    loops = []
    for name, client in clients.items():
        client.add_handler(
            MessageType.NOTIFY_URI, lambda m, w, name=name: got[name].append(m.body.content)
        )
        for kind in (MessageType.CONFIRM_SUBSCRIBE, MessageType.CONFIRM_UNSUBSCRIBE):
            client.add_handler(
                kind, lambda m, w, name=name: confirmed[name].put_nowait(m.header.message_type)
            )
        await client.connect()
        loops.append(asyncio.create_task(client.receive_loop()))

    async def confirm(name: str, kind: MessageType) -> None:
        await clients[name].send(msg(b"news", b"", kind))
        await asyncio.wait_for(confirmed[name].get(), TIMEOUT)

    await confirm("a", MessageType.SUBSCRIBE_URI)
    await confirm("b", MessageType.SUBSCRIBE_URI)
    await server.notify(b"news", msg(b"news", b"first", MessageType.NOTIFY_URI))
    await confirm("b", MessageType.UNSUBSCRIBE_URI)
    await server.notify(b"news", msg(b"news", b"second", MessageType.NOTIFY_URI))
    await server.broadcast(msg(b"all", b"everyone", MessageType.NOTIFY_URI))
    # One more round trip each, so that every frame above has been handled.
    await confirm("a", MessageType.SUBSCRIBE_URI)
    await confirm("b", MessageType.UNSUBSCRIBE_URI)

    assert got == {"a": [b"first", b"second", b"everyone"], "b": [b"first", b"everyone"]}
    assert set(server.subscriptions) == {b"news"}
    assert len(server.subscriptions[b"news"]) == 1

    await clients["a"].close()
    assert await asyncio.wait_for(loops[0], TIMEOUT) is None  # the loop ends with its connection
    loops[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loops[1], TIMEOUT)
    await clients["b"].close()


async def test_hmac_signed_broadcast_is_verified_by_clients(auth_server):
    server, _ = auth_server
    good, _ = admin_client(server.port)
    wrong, _ = admin_client(server.port, outer="wrong secret")
    async with good, wrong:
        await good.connect()
        await wrong.connect()
        # A request each, so that the server has registered both clients.
        assert await request(good, msg(b"echo", b"hi")) is not None
        assert await request(wrong, msg(b"echo", b"hi")) is None
        await server.broadcast(msg(b"all", b"signed", MessageType.NOTIFY_URI))
        await server.broadcast(msg(b"all", b"unsigned", MessageType.NOTIFY_URI), use_auth=False)

        signed = await asyncio.wait_for(good.receive_once(), TIMEOUT)
        unsigned = await asyncio.wait_for(good.receive_once(), TIMEOUT)
        forged_for_wrong = await asyncio.wait_for(wrong.receive_once(), TIMEOUT)

    assert signed is not None
    assert signed.body.content == b"signed"
    assert unsigned is None  # no signature: the client's plugin discards it
    assert forged_for_wrong is None


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_exchange_on_uvloop():
    uvloop = pytest.importorskip("uvloop", reason="the uvloop extra is not installed")

    async def exchange() -> tuple[bool, bytes]:
        server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
        server.add_handler(
            MessageType.REQUEST_URI,
            lambda m, w: msg(b"r", m.body.content, MessageType.RESPOND_URI),
        )
        async with server, TCPClient(port=server.port) as client:
            await client.connect()
            reply = await request(client, msg(b"q", b"on uvloop"))
            await server.broadcast(msg(b"all", b"bye", MessageType.NOTIFY_URI))
            bye = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert reply is not None
        assert bye is not None
        on_uvloop = isinstance(asyncio.get_running_loop(), uvloop.Loop)
        return on_uvloop, reply.body.content + bye.body.content

    on_uvloop, content = uvloop.run(exchange())
    assert on_uvloop
    assert content == b"on uvloopbye"
