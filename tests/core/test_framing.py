"""MessageReader on a real asyncio.StreamReader: frame boundaries, end of
stream, size limit and recovery after a malformed frame."""

from __future__ import annotations

import asyncio
import struct
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaio_core import (
    AuthFields,
    Body,
    ConnectionClosedError,
    DecodeError,
    FrameError,
    FrameTooLargeError,
    Header,
    Message,
    MessageReader,
    MessageType,
    UnknownMessageTypeError,
    read_message,
)


def _message(n: int, **fields: bytes | int) -> Message:
    return Message.prepare(
        Body.prepare(f"content {n}".encode(), f"/uri/{n}".encode()),
        MessageType.PUBLISH_URI,
        AuthFields(dict(fields)),
    )


def _stream(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def _read(frames: MessageReader[Message], reader: asyncio.StreamReader) -> Message:
    return await asyncio.wait_for(frames.read(reader), 5)


async def test_several_frames_in_one_feed() -> None:
    messages = [_message(1), _message(2, nonce=b"\x00" * 16, ts=2**40), _message(3)]
    reader = _stream(b"".join(m.encode() for m in messages))
    frames: MessageReader[Message] = MessageReader()
    assert [await _read(frames, reader) for _ in messages] == messages
    with pytest.raises(ConnectionClosedError) as info:
        await _read(frames, reader)
    assert info.value.partial is False


async def test_a_frame_split_across_feeds() -> None:
    message = _message(7, ts=1)
    data = message.encode()
    reader = _stream(eof=False)
    task = asyncio.ensure_future(MessageReader().read(reader))
    for i in range(len(data) - 1):
        reader.feed_data(data[i : i + 1])
        await asyncio.sleep(0)  # let the reader take the byte
        assert not task.done()
    reader.feed_data(data[-1:])
    assert await asyncio.wait_for(task, 5) == message


@pytest.mark.parametrize("cut", [1, 8], ids=["1-byte", "8-bytes"])
async def test_eof_in_the_header_is_partial(cut: int) -> None:
    reader = _stream(_message(1).encode()[:cut])
    with pytest.raises(ConnectionClosedError, match="middle of a frame header") as info:
        await _read(MessageReader(), reader)
    assert info.value.partial is True


@pytest.mark.parametrize("extra", [0, 5, 20], ids=["after-header", "in-auth", "in-body"])
async def test_eof_in_the_body_is_partial(extra: int) -> None:
    reader = _stream(_message(1, ts=1).encode()[: 9 + extra])
    with pytest.raises(ConnectionClosedError, match="middle of a frame") as info:
        await _read(MessageReader(), reader)
    assert info.value.partial is True


async def test_clean_eof_is_not_partial() -> None:
    with pytest.raises(ConnectionClosedError) as info:
        await _read(MessageReader(), _stream())
    assert info.value.partial is False
    assert isinstance(info.value, ConnectionError)


async def test_frame_over_the_limit_is_refused_before_its_body_is_read() -> None:
    big = Message.prepare(Body.prepare(b"x" * 200)).encode()
    reader = _stream(big, eof=False)
    frames: MessageReader[Message] = MessageReader(max_frame_size=100)
    with pytest.raises(
        FrameTooLargeError, match=rf"frame of {len(big)} bytes refused: the limit is 100"
    ):
        await _read(frames, reader)
    # everything after the header is still unread in the stream
    assert await asyncio.wait_for(reader.readexactly(len(big) - 9), 5) == big[9:]


async def test_frame_at_the_limit_is_read() -> None:
    message = _message(1)
    data = message.encode()
    frames: MessageReader[Message] = MessageReader(max_frame_size=len(data))
    assert await _read(frames, _stream(data)) == message


def _frame(auth: bytes, body: bytes, message_type: int = 0) -> bytes:
    return struct.pack("!BHHI", message_type, len(auth), len(body), crc32(body)) + auth + body


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_frame(b"", b"\x00\x00\x00\x09uri"), r"uri_length 9 exceeds the 3 bytes after it"),
        (_frame(b"\x4d\x40\x01\x03", b"\x00\x00\x00\x00"), r"auth section truncated"),
        (_frame(b"\x06\x01", b"\x00\x00\x00\x00"), r"expected a dict, found type code 0x06"),
    ],
    ids=["body", "auth-truncated", "auth-not-a-dict"],
)
async def test_malformed_frame_then_the_next_frame_reads_fine(frame: bytes, match: str) -> None:
    following = _message(2, ts=5)
    reader = _stream(frame + following.encode())
    frames: MessageReader[Message] = MessageReader()
    with pytest.raises(DecodeError, match=match):
        await _read(frames, reader)
    assert await _read(frames, reader) == following


async def test_reader_leaves_the_checksum_to_the_caller() -> None:
    message = _message(1)
    message.header.checksum ^= 1
    data = message.header.encode() + message.auth_data.encode() + message.body.encode()
    received = await _read(MessageReader(), _stream(data))
    assert received.body == message.body
    assert not received.check()


async def test_unknown_message_type_skips_the_frame_and_the_next_one_reads() -> None:
    follower = _message(2)
    data = bytes((99,)) + _message(1).encode()[1:] + follower.encode()
    reader = _stream(data)
    frames: MessageReader[Message] = MessageReader()
    with pytest.raises(UnknownMessageTypeError, match=r"unknown message type 99") as info:
        await _read(frames, reader)
    assert isinstance(info.value, DecodeError)
    assert await asyncio.wait_for(frames.read(reader), 5) == follower


async def test_unknown_message_type_over_the_size_limit_is_refused() -> None:
    data = bytes((99,)) + _message(1).encode()[1:]
    with pytest.raises(FrameTooLargeError):
        await _read(MessageReader(max_frame_size=10), _stream(data))


async def test_undecodable_header_is_a_frame_error() -> None:
    class StrictHeader(Header):
        @classmethod
        def decode(cls, data: bytes) -> Header:
            raise ValueError("bad magic")

    data = _message(1).encode()
    with pytest.raises(FrameError, match=r"undecodable frame header: bad magic") as info:
        await _read(MessageReader(header_class=StrictHeader), _stream(data))
    assert not isinstance(info.value, (DecodeError, FrameTooLargeError))
    assert isinstance(info.value, ValueError)


async def test_read_message_function() -> None:
    message = _message(3, ts=-3)
    received = await asyncio.wait_for(read_message(_stream(message.encode())), 5)
    assert received == message
    with pytest.raises(FrameTooLargeError):
        await asyncio.wait_for(read_message(_stream(message.encode()), max_frame_size=9), 5)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.integers(9, 400))
def test_any_stream_reads_as_messages_or_a_netaio_error(data: bytes, limit: int) -> None:
    async def read_all() -> None:
        reader = _stream(data)
        frames: MessageReader[Message] = MessageReader(max_frame_size=limit)
        for _ in range(len(data) + 1):  # bounded: every read consumes a byte or ends
            try:
                await asyncio.wait_for(frames.read(reader), 5)
            except DecodeError:
                continue
            except (FrameError, ConnectionClosedError):
                return
        pytest.fail("the stream never ended")

    asyncio.run(read_all())
