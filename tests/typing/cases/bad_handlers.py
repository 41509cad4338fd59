"""Handlers with a wrong return type, message class or writer type are rejected."""

from __future__ import annotations

import asyncio

from netaio import Body, Handler, Message, MessageType, TCPClient, TCPServer

server = TCPServer(host="127.0.0.1", port=0)
client = TCPClient()


@server.on(MessageType.REQUEST_URI)  # E[arg-type]: "Callable[[Message, StreamWriter], str]"
def returns_text(message: Message, writer: asyncio.StreamWriter) -> str:
    return "not a message"


@server.on(MessageType.CREATE_URI)  # E[arg-type]: "Callable[[Message, StreamWriter], Coroutine[Any, Any, bytes]]"
async def returns_bytes(message: Message, writer: asyncio.StreamWriter) -> bytes:
    return message.body.content


def returns_int(message: Message, writer: asyncio.StreamWriter) -> int:
    return 1


client.add_handler(MessageType.OK, returns_int)  # E[arg-type]: "Callable[[Message, StreamWriter], int]"
typed: Handler[Message] = returns_int  # E[assignment]: "Callable[[Message, StreamWriter], int]"


@server.on(MessageType.DELETE_URI)  # E[arg-type]: "Callable[[Message, StreamReader], Message]"
def wrong_writer(message: Message, writer: asyncio.StreamReader) -> Message:
    return message


@server.on(MessageType.UPDATE_URI)  # E[arg-type]: "Callable[[Message], Message]"
def no_writer(message: Message) -> Message:
    return message


def subscribe_reader(reader: asyncio.StreamReader, message: Message) -> None:
    server.subscribe(b"items", reader)  # E[arg-type]: "StreamReader"
    server.unsubscribe(b"items", reader)  # E[arg-type]: "StreamReader"


async def send_to_reader(reader: asyncio.StreamReader) -> None:
    await server.send(reader, Message.prepare(Body.prepare(b"x")))  # E[arg-type]: "StreamReader"
