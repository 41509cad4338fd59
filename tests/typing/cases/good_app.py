"""A small typed application on netaio, written as a downstream user would.

It must pass ``mypy --strict`` and run to completion. Its message classes
satisfy netaio's Protocols structurally (no inheritance), its auth plugin is
its own, and its handlers are annotated with the concrete classes.
"""

from __future__ import annotations

import asyncio
import hmac
import struct
from collections.abc import Hashable
from dataclasses import dataclass, field
from zlib import crc32

import netaio
from netaio import (
    Body,
    Handler,
    HMACAuthPlugin,
    Message,
    MessageType,
    TCPClient,
    TCPServer,
)

# -- custom wire classes: a header with a version byte, a JSON-ish body ---------


@dataclass
class MyHeader:
    message_type: MessageType
    auth_length: int
    body_length: int
    checksum: int
    version: int = 2

    _format = struct.Struct("!BBHHI")

    @staticmethod
    def header_length() -> int:
        return 10

    @staticmethod
    def struct_fstring() -> str:
        return "!BBHHI"

    @classmethod
    def decode(cls, data: bytes) -> MyHeader:
        version, kind, auth_length, body_length, checksum = cls._format.unpack_from(data)
        return cls(MessageType(kind), auth_length, body_length, checksum, version)

    def encode(self) -> bytes:
        return self._format.pack(
            self.version,
            self.message_type.value,
            self.auth_length,
            self.body_length,
            self.checksum,
        )


@dataclass
class MyAuthFields:
    fields: dict[str, netaio.AuthValue] = field(default_factory=dict)

    @classmethod
    def decode(cls, data: bytes) -> MyAuthFields:
        fields: dict[str, netaio.AuthValue] = {}
        offset = 0
        while offset < len(data):
            key_length, is_int, value_length = struct.unpack_from("!B?H", data, offset)
            offset += 4
            key = data[offset : offset + key_length].decode()
            offset += key_length
            raw = data[offset : offset + value_length]
            offset += value_length
            fields[key] = int.from_bytes(raw, "big", signed=True) if is_int else raw
        return cls(fields)

    def encode(self) -> bytes:
        parts: list[bytes] = []
        for key, value in sorted(self.fields.items()):
            raw = value.to_bytes(8, "big", signed=True) if isinstance(value, int) else value
            name = key.encode()
            parts.append(struct.pack("!B?H", len(name), isinstance(value, int), len(raw)))
            parts += [name, raw]
        return b"".join(parts)


@dataclass
class MyBody:
    uri: bytes
    content: bytes

    @classmethod
    def decode(cls, data: bytes) -> MyBody:
        uri, _, content = data.partition(b"\n")
        return cls(uri, content)

    def encode(self) -> bytes:
        return self.uri + b"\n" + self.content

    @classmethod
    def prepare(cls, content: bytes, uri: bytes = b"/") -> MyBody:
        return cls(uri, content)

    def text(self) -> str:
        return self.content.decode()


@dataclass
class MyMessage:
    header: MyHeader
    auth_data: MyAuthFields
    body: MyBody

    def check(self) -> bool:
        return self.header.checksum == crc32(self.body.encode())

    def encode(self) -> bytes:
        body = self.body.encode()
        auth = self.auth_data.encode()
        self.header.auth_length, self.header.body_length = len(auth), len(body)
        self.header.checksum = crc32(body)
        return self.header.encode() + auth + body

    @classmethod
    def prepare(
        cls,
        body: netaio.BodyProtocol,
        message_type: MessageType = MessageType.REQUEST_URI,
        auth_data: netaio.AuthFieldsProtocol | None = None,
    ) -> MyMessage:
        my_body = body if isinstance(body, MyBody) else MyBody(body.uri, body.content)
        fields = MyAuthFields(dict(auth_data.fields) if auth_data is not None else {})
        encoded = my_body.encode()
        header = MyHeader(message_type, len(fields.encode()), len(encoded), crc32(encoded))
        return cls(header, fields, my_body)

    @classmethod
    def of(cls, message_type: MessageType, uri: bytes, content: bytes) -> MyMessage:
        return cls.prepare(MyBody(uri, content), message_type)


def my_error(text: str) -> MyMessage:
    return MyMessage.of(MessageType.ERROR, b"/error", text.encode())


def my_not_found(message: MyMessage, writer: asyncio.StreamWriter) -> MyMessage:
    return MyMessage.of(MessageType.NOT_FOUND, message.body.uri, b"no such route")


# -- a custom auth plugin: a shared token in the "token" field ----------------


class TokenAuth:
    def __init__(self, token: bytes) -> None:
        self.token = token

    def make(self, auth_fields: netaio.AuthFieldsProtocol, body: netaio.BodyProtocol) -> None:
        auth_fields.fields["token"] = self.token

    def check(self, auth_fields: netaio.AuthFieldsProtocol, body: netaio.BodyProtocol) -> bool:
        token = auth_fields.fields.get("token")
        return isinstance(token, bytes) and hmac.compare_digest(token, self.token)

    def error(self) -> MyMessage:
        return MyMessage.of(MessageType.AUTH_ERROR, b"/auth", b"bad token")


# -- the application ----------------------------------------------------------


def build_custom_server() -> TCPServer[MyMessage]:
    server: TCPServer[MyMessage] = TCPServer(
        host="127.0.0.1",
        port=0,
        header_class=MyHeader,
        body_class=MyBody,
        message_class=MyMessage,
        make_error_response=my_error,
        default_handler=my_not_found,
        auth_plugin=TokenAuth(b"s3cret"),
        auth_fields_class=MyAuthFields,
    )

    @server.on((MessageType.REQUEST_URI, b"/upper"))
    def upper(message: MyMessage, writer: asyncio.StreamWriter) -> MyMessage:
        text = message.body.text().upper()
        return MyMessage.of(MessageType.RESPOND_URI, b"/upper", text.encode())

    @server.on(MessageType.SUBSCRIBE_URI)
    async def subscribe(message: MyMessage, writer: asyncio.StreamWriter) -> MyMessage | None:
        server.subscribe(message.body.uri, writer)
        return MyMessage.of(MessageType.CONFIRM_SUBSCRIBE, message.body.uri, b"")

    versions_seen: list[int] = []

    def record_version(message: MyMessage, writer: asyncio.StreamWriter) -> None:
        versions_seen.append(message.header.version)  # and send no reply

    handler: Handler[MyMessage] = record_version
    server.add_handler((MessageType.PUBLISH_URI, b"/legacy"), handler)
    return server


def build_custom_client(port: int) -> TCPClient[MyMessage]:
    return TCPClient(
        "127.0.0.1",
        port,
        header_class=MyHeader,
        body_class=MyBody,
        message_class=MyMessage,
        auth_plugin=TokenAuth(b"s3cret"),
        auth_fields_class=MyAuthFields,
    )


async def exchange(client: TCPClient[MyMessage], message: MyMessage) -> MyMessage:
    await client.send(message)
    reply = await asyncio.wait_for(client.receive_once(), 5)
    assert reply is not None
    return reply


async def custom_classes() -> None:
    server = build_custom_server()
    async with server:
        async with build_custom_client(server.port) as client:
            await client.connect()
            reply = await exchange(client, MyMessage.of(MessageType.REQUEST_URI, b"/upper", b"hi"))
            print("upper:", reply.body.text(), "version", reply.header.version)
            missing = await exchange(client, MyMessage.of(MessageType.REQUEST_URI, b"/x", b""))
            print("missing:", missing.header.message_type.name, missing.body.text())
            await exchange(client, MyMessage.of(MessageType.SUBSCRIBE_URI, b"/news", b""))
            await server.notify(b"/news", MyMessage.of(MessageType.NOTIFY_URI, b"/news", b"n1"))
            await server.broadcast(MyMessage.of(MessageType.PUBLISH_URI, b"/all", b"b1"))
            for _ in range(2):
                pushed = await asyncio.wait_for(client.receive_once(), 5)
                assert pushed is not None
                print("pushed:", pushed.header.message_type.name, pushed.body.text())


async def default_classes() -> None:
    plugin = HMACAuthPlugin({"secret": "shared"})
    server = TCPServer(host="127.0.0.1", port=0, auth_plugin=plugin)
    seen: asyncio.Queue[Message] = asyncio.Queue()

    @server.on((MessageType.REQUEST_URI, b"/echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return Message.prepare(Body.prepare(message.body.content, b"/echo"), MessageType.OK)

    @server.on(MessageType.CREATE_URI)
    async def create(message: Message, writer: asyncio.StreamWriter) -> Message | None:
        await server.notify(b"items", Message.prepare(message.body, MessageType.NOTIFY_URI))
        return None

    client = TCPClient(port=0, auth_plugin=HMACAuthPlugin({"secret": "shared"}))

    def on_notify(message: Message, writer: asyncio.StreamWriter) -> None:
        seen.put_nowait(message)

    client.add_handler(MessageType.NOTIFY_URI, on_notify)
    async with server, client:
        await client.connect("127.0.0.1", server.port)
        address: tuple[str, int] = ("127.0.0.1", server.port)
        await client.send(Message.prepare(Body.prepare(b"ping", b"/echo")), address)
        reply: Message | None = await asyncio.wait_for(client.receive_once(address), 5)
        assert reply is not None
        print("echo:", reply.header.message_type.name, reply.body.content.decode())
        (writer,) = server.clients
        server.subscribe(b"items", writer)
        await client.send(Message.prepare(Body.prepare(b"apple"), MessageType.CREATE_URI), address)
        await asyncio.wait_for(client.receive_once(address), 5)
        notified = await asyncio.wait_for(seen.get(), 5)
        print("notified:", notified.body.content.decode())
        server.unsubscribe(b"items", writer)
        keys: list[Hashable] = netaio.keys_extractor(notified)
        print("keys:", len(keys))


async def main() -> None:
    await custom_classes()
    await default_classes()
    print("version", netaio.version())


if __name__ == "__main__":
    asyncio.run(main())
