"""Raw bytes, or a message of the wrong class, where a message belongs."""

from __future__ import annotations

import asyncio

from netaio import Body, Message, MessageType, TCPClient, TCPServer


class OtherMessage(Message):
    """A distinct message class, for a server typed over it."""


async def main() -> None:
    server = TCPServer(host="127.0.0.1", port=0)
    client = TCPClient()
    await client.send(b"hello")  # E[arg-type]: "bytes"; expected "MessageProtocol"
    await server.broadcast(b"hello")  # E[arg-type]: "bytes"; expected "MessageProtocol"
    await server.notify(b"key", b"hello")  # E[arg-type]: "bytes"; expected "MessageProtocol"
    Message.prepare(b"hello")  # E[arg-type]: "bytes"; expected "BodyProtocol"
    Message.prepare(Body.prepare("text"))  # E[arg-type]: "str"; expected "bytes"
    reply = await client.receive_once()
    content: bytes = reply.body.content  # E[union-attr]: Item "None" of "Message | None" has no attribute "body"
    text: str = Message.prepare(Body.prepare(b"x")).body.content  # E[assignment]: "bytes"

    other: TCPServer[OtherMessage] = TCPServer(message_class=OtherMessage)

    @other.on(MessageType.REQUEST_URI)
    def accepts_base(message: Message, writer: asyncio.StreamWriter) -> OtherMessage:
        return OtherMessage.prepare(message.body)  # E[return-value]: (got "Message", expected "OtherMessage")

    @server.on(MessageType.REQUEST_URI)  # E[arg-type]: "Callable[[OtherMessage, StreamWriter], Message]"
    def wants_subclass(message: OtherMessage, writer: asyncio.StreamWriter) -> Message:
        return message
