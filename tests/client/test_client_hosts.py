"""TCPClient keeps one connection per (host, port) and routes by ``server=``."""

from __future__ import annotations

import asyncio

import pytest
from client_peer import TIMEOUT, message

from netaio_client import TCPClient
from netaio_core import ConnectionClosedError, MessageType, NotConnectedError


async def test_two_servers_at_once_with_server_routing(raw_server, clients):
    one, two = await raw_server(), await raw_server()
    client = TCPClient(port=one.port)
    clients.append(client)
    await client.connect()
    await client.connect("127.0.0.1", two.port)
    end_one, end_two = await one.accept(), await two.accept()

    assert set(client.hosts) == {one.address, two.address}
    assert client.hosts[one.address][1] is not client.hosts[two.address][1]

    await client.send(message(b"to", b"default", MessageType.REQUEST_URI))
    await client.send(message(b"to", b"two", MessageType.REQUEST_URI), server=two.address)
    await client.send(message(b"to", b"one", MessageType.REQUEST_URI), server=one.address)
    assert [(await end_one.receive()).body.content for _ in range(2)] == [b"default", b"one"]
    assert (await end_two.receive()).body.content == b"two"

    await end_two.send(message(b"from", b"two"))
    await end_one.send(message(b"from", b"one"))
    from_two = await asyncio.wait_for(client.receive_once(server=two.address), TIMEOUT)
    from_default = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert from_two is not None
    assert from_default is not None
    assert (from_two.body.content, from_default.body.content) == (b"two", b"one")

    await client.close(two.address)
    assert set(client.hosts) == {one.address}
    assert await end_two.at_eof()
    # The other connection is untouched.
    await client.send(message(b"to", b"still one", MessageType.REQUEST_URI))
    assert (await end_one.receive()).body.content == b"still one"


async def test_connect_defaults_to_default_host_and_keeps_a_live_connection(raw_server, clients):
    server = await raw_server()
    client = TCPClient(host="127.0.0.1", port=server.port)
    clients.append(client)
    assert client.default_host == server.address
    assert client.port == server.port
    assert client.hosts == {}

    await client.connect()
    streams = client.hosts[server.address]
    await client.connect()
    await client.connect("127.0.0.1", server.port)

    # The same streams: no second connection was opened.
    assert client.hosts == {server.address: streams}
    assert client.hosts[server.address] is streams


async def test_connect_again_after_the_server_closed_opens_a_new_connection(raw_server, clients):
    server = await raw_server()
    client = TCPClient(port=server.port)
    clients.append(client)
    await client.connect()
    first = await server.accept()
    await first.close()
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(client.receive_once(), TIMEOUT)

    await client.connect()

    second = await server.accept()
    await client.send(message(b"again", b"", MessageType.REQUEST_URI))
    assert (await second.receive()).body.uri == b"again"


@pytest.mark.parametrize("method", ["send", "receive_once", "receive_loop", "close"])
async def test_using_a_server_not_connected_to_raises_an_error_naming_it(
    raw_server, clients, method
):
    server = await raw_server()
    client = TCPClient(port=server.port)
    clients.append(client)
    await client.connect()
    await server.accept()
    elsewhere = ("127.0.0.1", 1)

    calls = {
        "send": lambda target: client.send(message(), server=target),
        "receive_once": lambda target: client.receive_once(server=target),
        "receive_loop": lambda target: client.receive_loop(server=target),
        "close": lambda target: client.close(server=target),
    }
    with pytest.raises(NotConnectedError) as caught:
        await asyncio.wait_for(calls[method](elsewhere), TIMEOUT)
    assert caught.value.server == elsewhere
    assert "127.0.0.1:1" in str(caught.value)
    assert isinstance(caught.value, ConnectionError)

    # The default host is used when server is None; after close it is unknown too.
    await client.close()
    with pytest.raises(NotConnectedError) as caught:
        await asyncio.wait_for(calls[method](None), TIMEOUT)
    assert caught.value.server == server.address
    assert f"127.0.0.1:{server.port}" in str(caught.value)


async def test_close_all_and_async_with_close_every_connection(raw_server):
    one, two = await raw_server(), await raw_server()
    async with TCPClient(port=one.port) as client:
        await client.connect()
        await client.connect("127.0.0.1", two.port)
        ends = [await one.accept(), await two.accept()]
    assert client.hosts == {}
    for end in ends:
        assert await end.at_eof()


async def test_connect_to_a_closed_port_raises_and_records_nothing(clients):
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    client = TCPClient(port=port)
    clients.append(client)

    with pytest.raises(ConnectionRefusedError):
        await client.connect()
    assert client.hosts == {}
