"""Hostile input: garbage and mutated frames over real connections to one
live server, while a well-behaved client keeps getting correct answers."""

from __future__ import annotations

import asyncio
import gc
from zlib import crc32

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netaio_client import TCPClient
from netaio_core import (
    AuthFields,
    Body,
    DecodeError,
    Header,
    Limits,
    Message,
    MessageType,
    UnknownMessageTypeError,
)
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import (
    ECHO_URI,
    TIMEOUT,
    RawPeer,
    echo_reply,
    echo_server,
    error_reply,
    request,
    subscribers,
    summary,
)

MAX_FRAME = 2048
Reply = tuple[MessageType, bytes, bytes]


class StrictHeader(Header):
    """A header class, as an application might write one, that cannot decode
    message type values from 128 up: frames starting so cannot be delimited.
    Lower unknown values are skipped as with the default class."""

    @classmethod
    def decode(cls, data: bytes) -> Header:
        if data[0] >= 128:
            raise ValueError(f"reserved message type {data[0]}")
        return super().decode(data)


def fuzz_server() -> TCPServer[Message]:
    return echo_server(Limits(max_frame_size=MAX_FRAME), header_class=StrictHeader)


def expected_replies(data: bytes) -> list[Reply]:
    """What ``fuzz_server`` must answer to ``data`` sent on one connection and
    followed by end of stream: a model of the server's framing rules built on
    the codec alone.

    Frames are read one after another. A header that cannot be decoded or
    announces more than MAX_FRAME bytes ends the connection after an error
    reply; a frame of an unknown message type, a malformed auth section or
    body, or a checksum that does not match gets an error reply and reading
    goes on; an incomplete frame at the end gets nothing.
    """
    replies: list[Reply] = []
    position = 0
    while len(data) - position >= 9:
        header: Header | None
        try:
            header = StrictHeader.decode(data[position : position + 9])
            remainder = header.auth_length + header.body_length
        except UnknownMessageTypeError as exc:
            header, remainder = None, exc.frame_remainder
        except ValueError:
            replies.append(error_reply(b"invalid frame"))
            return replies
        if 9 + remainder > MAX_FRAME:
            replies.append(error_reply(b"frame too large"))
            return replies
        end = position + 9 + remainder
        if end > len(data):
            return replies
        start, position = position, end
        if header is None:
            replies.append(error_reply(b"invalid message"))
            continue
        auth_end = start + 9 + header.auth_length
        body_bytes = data[auth_end:end]
        try:
            AuthFields.decode(data[start + 9 : auth_end])
            body = Body.decode(body_bytes)
        except DecodeError:
            replies.append(error_reply(b"invalid message"))
            continue
        if crc32(body_bytes) != header.checksum:
            replies.append(error_reply(b"invalid message"))
        elif header.message_type is MessageType.REQUEST_URI and body.uri == ECHO_URI:
            replies.append(echo_reply(body.content))
        elif header.message_type is MessageType.SUBSCRIBE_URI:
            replies.append((MessageType.CONFIRM_SUBSCRIBE, body.uri, b""))
        else:
            replies.append(error_reply(b"not found"))
    return replies


auth_values = st.one_of(st.binary(max_size=20), st.integers(-(2**40), 2**40))
valid_frames = st.builds(
    lambda kind, uri, content, fields: Message.prepare(
        Body.prepare(content, uri), kind, AuthFields(fields)
    ).encode(),
    st.sampled_from(list(MessageType)) | st.just(MessageType.REQUEST_URI),
    st.just(ECHO_URI) | st.sampled_from([b"x", b""]) | st.binary(max_size=8),
    st.binary(max_size=64),
    st.dictionaries(st.text(max_size=6), auth_values, max_size=3),
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame with a few bytes flipped, cut off or inserted."""
    frame = bytearray(draw(valid_frames))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(frame)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and where < len(frame):
            frame[where] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del frame[where : where + draw(st.integers(1, 8))]
        else:
            frame[where:where] = draw(st.binary(min_size=1, max_size=8))
    return bytes(frame)


subscribe_frames = st.sampled_from([b"news", b"other"]).map(
    lambda uri: request(b"", uri, MessageType.SUBSCRIBE_URI).encode()
)
echo_frames = st.binary(max_size=64).map(lambda content: request(content).encode())
# A header announcing more than MAX_FRAME bytes, maybe followed by some of them.
oversized_frames = st.builds(
    lambda kind, auth_length, body, more: Header(kind, auth_length, len(body), 0).encode() + more,
    st.sampled_from(list(MessageType)),
    st.integers(MAX_FRAME, 0xFFFF),
    st.binary(max_size=16),
    st.binary(max_size=16),
)
# Intact frames that are invalid: a wrong checksum, or an unknown message type.
intact_invalid_frames = st.builds(
    lambda frame, checksum, kind: bytes([kind]) + frame[1:5] + checksum + frame[9:],
    valid_frames,
    st.binary(min_size=4, max_size=4),
    st.integers(0, 127),
).filter(lambda frame: expected_replies(frame) == [error_reply(b"invalid message")])
# A header that StrictHeader cannot decode, and whatever follows.
undecodable_frames = st.builds(
    lambda kind, rest: bytes([kind]) + rest, st.integers(128, 255), st.binary(max_size=24)
)
pieces = st.one_of(
    valid_frames,
    undecodable_frames,
    intact_invalid_frames,
    echo_frames,
    subscribe_frames,
    mutated_frames(),
    oversized_frames,
    st.binary(max_size=48),
)
# One hostile connection sends a few pieces, back to back, then ends its stream.
connections = st.lists(pieces, min_size=1, max_size=5).map(b"".join)


# Always tried first: one stream that takes every path of the model.
EVERY_PATH = [
    request(b"").encode()
    + request(b"", b"news", MessageType.SUBSCRIBE_URI).encode()
    + request(b"", b"nowhere").encode()
    + b"\x63\x00\x00\x00\x01\x00\x00\x00\x00?"  # unknown message type 99
    + Header(MessageType.REQUEST_URI, 0, 3 * MAX_FRAME, 0).encode(),
    b"\xff" + bytes(8),
]


class WellBehavedClient:
    """A TCPClient that exchanges echo requests in a loop and checks every answer."""

    def __init__(self, port: int) -> None:
        self.client: TCPClient[Message] = TCPClient("127.0.0.1", port)
        self.sent = 0
        self.answered = 0
        self.progress = asyncio.Event()
        self.stopping = False
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.connect()
        await self.client.send(request(b"", b"news", MessageType.SUBSCRIBE_URI))
        confirm = await asyncio.wait_for(self.client.receive_once(), TIMEOUT)
        assert confirm is not None
        assert summary(confirm) == (MessageType.CONFIRM_SUBSCRIBE, b"news", b"")
        self.task = asyncio.create_task(self._exchange())

    async def _exchange(self) -> None:
        while not self.stopping:
            content = b"good-%d" % self.sent
            self.sent += 1
            await self.client.send(request(content))
            reply = await asyncio.wait_for(self.client.receive_once(), TIMEOUT)
            assert reply is not None
            assert summary(reply) == echo_reply(content)
            self.answered += 1
            self.progress.set()

    async def wait_progress(self) -> None:
        """Wait for one more correct answer (fails if the exchange broke)."""
        assert self.task is not None
        self.progress.clear()
        waiter = asyncio.ensure_future(self.progress.wait())
        done, _ = await asyncio.wait(
            {waiter, self.task}, timeout=TIMEOUT, return_when="FIRST_COMPLETED"
        )
        waiter.cancel()
        assert waiter in done, self.task.exception() if self.task.done() else "no answer in time"

    async def stop(self) -> None:
        """Stop after the exchange in flight; fails if any answer was wrong."""
        assert self.task is not None
        self.stopping = True
        await asyncio.wait_for(self.task, TIMEOUT)


async def hostile_exchange(port: int, data: bytes) -> list[Reply]:
    """Send ``data`` on a fresh connection, end the stream and check every
    reply against the model until the server closes the connection."""
    peer = await RawPeer.open(port)
    try:
        await peer.send_bytes(data)
        peer.writer.write_eof()
        replies = [summary(m) for m in await peer.replies_until_end()]
    finally:
        await peer.close()
    assert replies == expected_replies(data)
    return replies


async def test_fuzzed_connections_leave_the_server_serving(
    serve: Serve, loop_errors: list[dict[str, object]]
) -> None:
    server = await serve(fuzz_server())
    good = WellBehavedClient(server.port)
    await good.start()
    loop = asyncio.get_running_loop()
    seen: set[Reply] = set()

    async def run_case(streams: list[bytes]) -> None:
        for replies in await asyncio.gather(
            *(hostile_exchange(server.port, data) for data in streams)
        ):
            seen.update(
                (kind, uri, b"" if kind is MessageType.RESPOND_URI else content)
                for kind, uri, content in replies
            )
        await good.wait_progress()

    @settings(max_examples=50, deadline=None)
    @given(st.lists(connections, min_size=1, max_size=3))
    @example(EVERY_PATH)
    def run_examples(streams: list[bytes]) -> None:
        # Hypothesis drives from a worker thread; the server lives on this loop.
        asyncio.run_coroutine_threadsafe(run_case(streams), loop).result(30)

    try:
        await loop.run_in_executor(None, run_examples)
        await good.stop()
        assert good.answered == good.sent >= 50
        # The examples exercised every path: answered, refused, closed.
        assert {error_reply(b"invalid frame"), error_reply(b"frame too large")} <= seen
        assert {error_reply(b"invalid message"), error_reply(b"not found")} <= seen
        assert {echo_reply(b""), (MessageType.CONFIRM_SUBSCRIBE, b"news", b"")} <= seen

        # Only the well-behaved client is left, with its one subscription.
        assert len(server.clients) == 1
        assert subscribers(server) == {b"news": set(server.clients)}
        await server.notify(b"news", request(b"still here", b"news", MessageType.NOTIFY_URI))
        notified = await asyncio.wait_for(good.client.receive_once(), TIMEOUT)
        assert notified is not None
        assert summary(notified) == (MessageType.NOTIFY_URI, b"news", b"still here")
    finally:
        if good.task is not None:
            good.task.cancel()
            await asyncio.gather(good.task, return_exceptions=True)
        await good.client.close_all()
    gc.collect()  # an unretrieved task exception is reported on collection
    assert not loop_errors, loop_errors[:3]


def _with_auth_section(auth: bytes) -> bytes:
    """An echo frame whose auth section is ``auth`` (lengths and checksum right)."""
    body = Body.prepare(b"payload", ECHO_URI).encode()
    return Header(MessageType.REQUEST_URI, len(auth), len(body), crc32(body)).encode() + auth + body


def _with_body(body: bytes) -> bytes:
    """An echo frame carrying ``body`` as is (lengths and checksum right)."""
    auth = AuthFields({}).encode()
    return Header(MessageType.REQUEST_URI, len(auth), len(body), crc32(body)).encode() + auth + body


def _with_checksum(checksum: int) -> bytes:
    frame = bytearray(request(b"payload").encode())
    frame[5:9] = checksum.to_bytes(4, "big")
    return bytes(frame)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(_with_checksum(0), id="checksum-mismatch"),
        pytest.param(_with_auth_section(b"\xff\x00\x01"), id="auth-section-garbage"),
        pytest.param(_with_body(b"\x00\x00"), id="body-under-4-bytes"),
        pytest.param(_with_body(b"\x00\x00\x01\x00echo"), id="uri-length-past-body"),
        pytest.param(b"\x63\x00\x00\x00\x05\x00\x00\x00\x00hello", id="unknown-message-type"),
    ],
)
async def test_intact_but_invalid_frame_gets_an_error_and_keeps_the_connection(
    serve: Serve, connect: Connect, frame: bytes
) -> None:
    server = await serve(fuzz_server())
    peer = await connect(server.port)
    assert expected_replies(frame) == [error_reply(b"invalid message")]

    await peer.send_bytes(frame)
    assert summary(await peer.receive()) == error_reply(b"invalid message")
    # The frame's boundaries were intact: the next request is answered.
    assert summary(await peer.request(request(b"next"))) == echo_reply(b"next")
    assert len(server.clients) == 1


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(b"\xff" + bytes(8), b"invalid frame", id="undecodable-header"),
        pytest.param(
            Header(MessageType.REQUEST_URI, 0, 3000, 0).encode(),
            b"frame too large",
            id="over-max-frame-size",
        ),
    ],
)
async def test_undelimitable_frame_gets_an_error_and_a_closed_connection(
    serve: Serve, connect: Connect, header: bytes, reason: bytes
) -> None:
    server = await serve(fuzz_server())
    peer = await connect(server.port)

    # A valid request follows in the same write: it must not be answered,
    # since the server cannot know where the bad frame ends.
    await peer.send_bytes(header + request(b"after").encode())
    replies = [summary(m) for m in await peer.replies_until_end()]
    assert replies == [error_reply(reason)]
    assert not server.clients
