"""TCPClient construction: the handlers mapping, defaults, loggers."""

from __future__ import annotations

import asyncio
import logging

from client_peer import TIMEOUT, message

from netaio_client import TCPClient, default_client_logger
from netaio_core import (
    AuthFieldsProtocol,
    BodyProtocol,
    Message,
    MessageProtocol,
    MessageType,
    keys_extractor,
    make_error_response,
)


class NeverPlugin:
    """Rejects every message."""

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        auth_fields.fields["never"] = b""

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return False

    def error(self) -> MessageProtocol:
        return make_error_response("auth failed")


def upper(msg: Message, writer: asyncio.StreamWriter) -> Message:
    return message(b"upper", msg.body.content.upper())


async def test_documented_defaults():
    client = TCPClient()
    assert client.default_host == ("127.0.0.1", 8888)
    assert client.port == 8888
    assert client.hosts == {}
    assert client.handlers == {}
    assert client.logger is default_client_logger
    assert client.auth_plugin is None
    assert client.extract_keys is keys_extractor


async def test_default_handlers_are_not_shared_between_clients():
    one, two = TCPClient(), TCPClient()
    assert one.handlers is not two.handlers
    assert one.hosts is not two.hosts

    one.add_handler(MessageType.OK, upper)

    assert MessageType.OK in one.handlers
    assert two.handlers == {}
    assert TCPClient().handlers == {}


async def test_handlers_mapping_is_copied_and_accepts_both_forms(raw_server, clients):
    plugin = NeverPlugin()
    given = {
        (MessageType.RESPOND_URI, b"plain"): upper,
        (MessageType.RESPOND_URI, b"guarded"): (upper, plugin),
    }
    client = TCPClient(handlers=given)
    clients.append(client)

    assert client.handlers == {
        (MessageType.RESPOND_URI, b"plain"): (upper, None),
        (MessageType.RESPOND_URI, b"guarded"): (upper, plugin),
    }
    client.add_handler(MessageType.OK, upper)
    assert MessageType.OK not in given  # the caller's mapping is not mutated

    server = await raw_server()
    await client.connect("127.0.0.1", server.port)
    peer = await server.accept()
    await peer.send(message(b"plain", b"abc"))
    await peer.send(message(b"guarded", b"abc"))
    target = server.address
    plain = await asyncio.wait_for(client.receive_once(target), TIMEOUT)
    guarded = await asyncio.wait_for(client.receive_once(target), TIMEOUT)
    assert plain is not None
    assert (plain.body.uri, plain.body.content) == (b"upper", b"ABC")
    assert guarded is None  # the tuple's plugin was enforced


def test_logger_is_netaio_client_at_info_with_only_a_null_handler():
    logger = logging.getLogger("netaio.client")
    assert default_client_logger is logger
    assert logger.level == logging.INFO
    assert [type(h) for h in logger.handlers] == [logging.NullHandler]


async def test_set_logger_replaces_the_logger(raw_server, clients, caplog):
    logger = logging.getLogger("tests.client.custom")
    server = await raw_server()
    client = TCPClient(port=server.port)
    clients.append(client)
    client.set_logger(logger)
    assert client.logger is logger
    with caplog.at_level(logging.INFO, logger="tests.client.custom"):
        await client.connect()
    assert any(r.name == "tests.client.custom" for r in caplog.records)
    assert not any(r.name == "netaio.client" for r in caplog.records)
