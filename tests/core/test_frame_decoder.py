"""FrameDecoder, the sans-I/O decoder: any split of a stream decodes like the
whole stream and like MessageReader over a StreamReader, malformed input
fails the same way, and byte-at-a-time feeding stays linear."""

from __future__ import annotations

import asyncio
import struct
import time
from itertools import pairwise
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaio_core import (
    MAX_SECTION_LENGTH,
    PROTOCOL_MAX_FRAME_SIZE,
    AuthFields,
    Body,
    ConnectionClosedError,
    DecodeError,
    FrameDecoder,
    FrameError,
    FrameTooLargeError,
    Header,
    Message,
    MessageReader,
    MessageType,
    UnknownMessageTypeError,
)

from .strategies import messages

# An outcome of one read: ("message", the message) or ("error", type, text).
Outcome = tuple[object, ...]


def _message(n: int, **fields: bytes | int) -> Message:
    return Message.prepare(
        Body.prepare(f"content {n}".encode(), f"/uri/{n}".encode()),
        MessageType.PUBLISH_URI,
        AuthFields(dict(fields)),
    )


def _frame(auth: bytes, body: bytes, message_type: int = 0) -> bytes:
    """A frame with a self-consistent header around arbitrary sections."""
    return struct.pack("!BHHI", message_type, len(auth), len(body), crc32(body)) + auth + body


class StrictHeader(Header):
    """A header class that refuses every header (an undecodable header)."""

    @classmethod
    def decode(cls, data: bytes) -> Header:
        raise ValueError("bad magic")


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def _drain(decoder: FrameDecoder[Message], out: list[Outcome]) -> bool:
    """Take every complete message (and error) the decoder holds; False once
    the stream is dead (a FrameError)."""
    while True:
        try:
            message = decoder.next_message()
        except DecodeError as exc:
            out.append(("error", type(exc), str(exc)))
            continue
        except FrameError as exc:
            out.append(("error", type(exc), str(exc)))
            return False
        if message is None:
            return True
        out.append(("message", message))


def _decode_chunks(chunks: list[bytes], **kwargs: object) -> list[Outcome]:
    """Feed chunks one by one, taking what is complete after each."""
    decoder: FrameDecoder[Message] = FrameDecoder(**kwargs)  # type: ignore[arg-type]
    out: list[Outcome] = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        if not _drain(decoder, out):
            break
    return out


def _decode_fed_first(chunks: list[bytes], **kwargs: object) -> list[Outcome]:
    """Feed every chunk, then take the messages."""
    decoder: FrameDecoder[Message] = FrameDecoder(**kwargs)  # type: ignore[arg-type]
    for chunk in chunks:
        decoder.receive_data(chunk)
    out: list[Outcome] = []
    _drain(decoder, out)
    return out


def _read_stream(data: bytes, **kwargs: object) -> list[Outcome]:
    """What MessageReader reads from a StreamReader holding ``data``, up to
    the end of the stream or a FrameError."""

    async def read_all() -> list[Outcome]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames: MessageReader[Message] = MessageReader(**kwargs)  # type: ignore[arg-type]
        out: list[Outcome] = []
        for _ in range(len(data) + 1):  # every read consumes a byte or ends
            try:
                out.append(("message", await asyncio.wait_for(frames.read(reader), 5)))
            except DecodeError as exc:
                out.append(("error", type(exc), str(exc)))
            except FrameError as exc:
                out.append(("error", type(exc), str(exc)))
                return out
            except ConnectionClosedError:
                return out
        raise AssertionError("the stream never ended")

    return asyncio.run(read_all())


# -- (a) any split decodes like the whole stream ----------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_any_split_decodes_like_the_whole_stream(batch: list[Message], data: st.DataObject) -> None:
    stream = b"".join(m.encode() for m in batch)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    chunks = _split(stream, cuts)
    expected = [("message", m) for m in batch]
    assert _decode_chunks([stream]) == expected
    assert _decode_chunks(chunks) == expected
    assert _decode_fed_first(chunks) == expected
    assert _read_stream(stream) == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 50),
            st.dictionaries(st.sampled_from(["ts", "nonce", "cid", "é"]), st.integers(0, 2**40)),
        ),
        min_size=2,
        max_size=5,
    ),
    st.integers(1, 40),
)
def test_fixed_size_chunks_with_and_without_auth_fields(
    specs: list[tuple[int, dict[str, int]]], size: int
) -> None:
    batch = [_message(n, **fields) for n, fields in specs]
    stream = b"".join(m.encode() for m in batch)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    expected = [("message", m) for m in batch]
    assert _decode_chunks(chunks) == expected == _read_stream(stream)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.integers(9, 400), st.data())
def test_any_bytes_decode_like_message_reader(
    stream: bytes, limit: int, data: st.DataObject
) -> None:
    """Arbitrary bytes: the same messages and the same errors (type and text)
    as MessageReader, however the bytes are split."""
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    expected = _read_stream(stream, max_frame_size=limit)
    assert _decode_chunks([stream], max_frame_size=limit) == expected
    assert _decode_chunks(_split(stream, cuts), max_frame_size=limit) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            messages.map(lambda m: m.encode()),
            st.just(_frame(b"", b"\x00\x00\x00\x09uri")),  # malformed body
            st.just(_frame(b"\x06\x01", b"\x00\x00\x00\x00")),  # malformed auth
            st.just(bytes((99,)) + _message(1).encode()[1:]),  # unknown type
        ),
        min_size=1,
        max_size=6,
    ),
    st.data(),
)
def test_valid_and_malformed_frames_mixed_decode_like_message_reader(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    expected = _read_stream(stream)
    assert len(expected) == len(frames)  # every frame: a message or a DecodeError
    assert _decode_chunks(_split(stream, cuts)) == expected
    assert _decode_fed_first(_split(stream, cuts)) == expected


def test_several_frames_in_one_feed() -> None:
    batch = [_message(1), _message(2, nonce=b"\x00" * 16, ts=2**40), _message(3)]
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(b"".join(m.encode() for m in batch))
    assert [decoder.next_message() for _ in batch] == batch
    assert decoder.next_message() is None
    assert decoder.buffered == 0


# -- (b) malformed input fails like MessageReader ----------------------------


def test_undecodable_header_is_a_frame_error_like_the_reader() -> None:
    data = _message(1).encode()
    decoder: FrameDecoder[Message] = FrameDecoder(header_class=StrictHeader)
    decoder.receive_data(data)
    with pytest.raises(FrameError, match=r"^undecodable frame header: bad magic$") as info:
        decoder.next_message()
    assert not isinstance(info.value, (DecodeError, FrameTooLargeError))
    assert isinstance(info.value.__cause__, ValueError)
    assert _read_stream(data, header_class=StrictHeader) == [
        ("error", FrameError, "undecodable frame header: bad magic")
    ]


def test_frame_error_is_sticky() -> None:
    decoder: FrameDecoder[Message] = FrameDecoder(header_class=StrictHeader)
    decoder.receive_data(_message(1).encode())
    with pytest.raises(FrameError) as first:
        decoder.next_message()
    for _ in range(3):  # more bytes, even a whole valid frame, change nothing
        decoder.receive_data(_message(2).encode())
        with pytest.raises(FrameError) as again:
            decoder.next_message()
        assert again.value is first.value


def test_frame_too_large_is_raised_from_the_header_alone() -> None:
    big = Message.prepare(Body.prepare(b"x" * 200)).encode()
    decoder: FrameDecoder[Message] = FrameDecoder(max_frame_size=100)
    decoder.receive_data(big[:8])
    assert decoder.next_message() is None  # not even a header yet
    decoder.receive_data(big[8:9])  # the header only: no byte of the body
    message = rf"^frame of {len(big)} bytes refused: the limit is 100$"
    with pytest.raises(FrameTooLargeError, match=message) as info:
        decoder.next_message()
    assert isinstance(info.value, FrameError)
    assert _read_stream(big, max_frame_size=100) == [("error", FrameTooLargeError, str(info.value))]
    # sticky too, whatever arrives afterwards
    decoder.receive_data(big[9:])
    with pytest.raises(FrameTooLargeError, match=message):
        decoder.next_message()


def test_unknown_message_type_over_the_limit_is_refused() -> None:
    data = bytes((99,)) + _message(1).encode()[1:]
    decoder: FrameDecoder[Message] = FrameDecoder(max_frame_size=10)
    decoder.receive_data(data[:9])
    with pytest.raises(FrameTooLargeError):
        decoder.next_message()
    assert _decode_chunks([data], max_frame_size=10) == _read_stream(data, max_frame_size=10)


def test_unknown_message_type_skips_the_frame_and_the_stream_continues() -> None:
    follower = _message(2, ts=3)
    data = bytes((99,)) + _message(1).encode()[1:] + follower.encode()
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(data)
    with pytest.raises(UnknownMessageTypeError, match=r"^unknown message type 99$") as info:
        decoder.next_message()
    assert isinstance(info.value, DecodeError)
    assert decoder.buffered == len(follower.encode())  # the unknown frame is consumed
    assert decoder.next_message() == follower
    assert decoder.next_message() is None
    assert _decode_chunks([data]) == _read_stream(data)


def test_unknown_message_type_is_raised_only_once_its_frame_is_complete() -> None:
    data = bytes((99,)) + _message(1).encode()[1:]
    decoder: FrameDecoder[Message] = FrameDecoder()
    for byte in data[:-1]:
        decoder.receive_data(bytes((byte,)))
        assert decoder.next_message() is None
    decoder.receive_data(data[-1:])
    with pytest.raises(UnknownMessageTypeError):
        decoder.next_message()
    assert decoder.next_message() is None
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("frame", "match", "has_auth"),
    [
        (_frame(b"", b"\x00\x00\x00\x09uri"), r"uri_length 9 exceeds the 3 bytes after it", True),
        (_frame(b"\x4d\x40\x01\x03", b"\x00\x00\x00\x00"), r"auth section truncated", False),
        (_frame(b"\x06\x01", b"\x00\x00\x00\x00"), r"expected a dict, found type code 0x06", False),
    ],
    ids=["body", "auth-truncated", "auth-not-a-dict"],
)
def test_malformed_frame_then_the_next_frame_decodes(
    frame: bytes, match: str, has_auth: bool
) -> None:
    following = _message(2, ts=5)
    data = frame + following.encode()
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(data)
    with pytest.raises(DecodeError, match=match) as info:
        decoder.next_message()
    assert type(info.value) is DecodeError
    assert (info.value.auth_data is not None) is has_auth
    assert decoder.next_message() == following
    assert decoder.next_message() is None
    expected = _read_stream(data)
    assert expected == [("error", DecodeError, str(info.value)), ("message", following)]
    assert _decode_chunks([data[i : i + 1] for i in range(len(data))]) == expected


def test_the_checksum_is_left_to_the_caller() -> None:
    message = _message(1)
    message.header.checksum ^= 1
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(
        message.header.encode() + message.auth_data.encode() + message.body.encode()
    )
    received = decoder.next_message()
    assert received is not None
    assert received.body == message.body
    assert not received.check()


# -- (c) one byte at a time --------------------------------------------------


def test_a_frame_fed_one_byte_at_a_time_is_decoded_once_complete() -> None:
    message = _message(7, ts=1, nonce=b"\x01" * 16)
    data = message.encode()
    decoder: FrameDecoder[Message] = FrameDecoder()
    for i in range(len(data) - 1):
        decoder.receive_data(data[i : i + 1])
        assert decoder.next_message() is None
        assert decoder.buffered == i + 1
    decoder.receive_data(data[-1:])
    assert decoder.next_message() == message
    assert decoder.next_message() is None
    assert decoder.buffered == 0


def _largest_message() -> Message:
    """A message whose frame is PROTOCOL_MAX_FRAME_SIZE (131,079) bytes."""
    pad = MAX_SECTION_LENGTH
    while len(AuthFields({"p": b"a" * pad}).encode()) > MAX_SECTION_LENGTH:
        pad -= 1
    auth = AuthFields({"p": b"a" * pad})
    body = Body.prepare(b"b" * (MAX_SECTION_LENGTH - 5), b"u")
    return Message.prepare(body, MessageType.PUBLISH_URI, auth)


class CountingDecoder(FrameDecoder[Message]):
    """Counts the bytes the decoder joins into one buffer (its only copies
    of received bytes besides handing a frame to the codec)."""

    __slots__ = ("copied",)

    def __init__(self) -> None:
        super().__init__()
        self.copied = 0

    def _merge(self, needed: int) -> bool:
        before = self.buffered
        merged = super()._merge(needed)
        if merged:
            self.copied += before
        return merged


def test_131_kb_one_byte_at_a_time_stays_linear() -> None:
    message = _largest_message()
    data = message.encode()
    assert len(data) == PROTOCOL_MAX_FRAME_SIZE
    decoder = CountingDecoder()
    started = time.perf_counter()
    for i in range(len(data) - 1):
        decoder.receive_data(data[i : i + 1])
        assert decoder.next_message() is None
    decoder.receive_data(data[-1:])
    received = decoder.next_message()
    elapsed = time.perf_counter() - started
    assert received == message
    assert decoder.buffered == 0
    # Bounded work: the bytes are joined about once (header, then frame),
    # not once per feed (that would be ~8.6 GB here).
    assert decoder.copied <= 2 * len(data), decoder.copied
    assert elapsed < 2.0, f"{elapsed:.2f} s for {len(data)} one-byte feeds"


def test_byte_at_a_time_across_many_frames_with_consumer_lag() -> None:
    """Bytes arrive while earlier frames are still unread (a paused consumer)."""
    batch = [_message(n, ts=n) for n in range(20)]
    data = b"".join(m.encode() for m in batch)
    decoder: FrameDecoder[Message] = FrameDecoder()
    received: list[Message] = []
    for i in range(len(data)):
        decoder.receive_data(data[i : i + 1])
        if i % 97 == 0:  # take at most one message now and then
            message = decoder.next_message()
            if message is not None:
                received.append(message)
    while (message := decoder.next_message()) is not None:
        received.append(message)
    assert received == batch


# -- (d) buffered and take_unparsed ------------------------------------------


def test_buffered_counts_the_bytes_not_yet_returned() -> None:
    first, second = _message(1, ts=1).encode(), _message(2).encode()
    decoder: FrameDecoder[Message] = FrameDecoder()
    assert decoder.buffered == 0
    decoder.receive_data(first + second[:5])
    assert decoder.buffered == len(first) + 5
    assert decoder.next_message() is not None
    assert decoder.buffered == 5
    assert decoder.next_message() is None
    assert decoder.buffered == 5
    decoder.receive_data(second[5:12])  # the header is now complete, not the frame
    assert decoder.next_message() is None
    assert decoder.buffered == 12
    decoder.receive_data(second[12:] + first[:3])
    assert decoder.buffered == len(second) + 3
    assert decoder.next_message() is not None
    assert decoder.buffered == 3


def test_take_unparsed_returns_the_rest_of_the_stream() -> None:
    batch = [_message(n, ts=n) for n in range(3)]
    data = b"".join(m.encode() for m in batch)
    first_length = len(batch[0].encode())
    decoder: FrameDecoder[Message] = FrameDecoder()
    # Split inside the second frame's body, after its header was decoded.
    decoder.receive_data(data[: first_length + 20])
    assert decoder.next_message() == batch[0]
    assert decoder.next_message() is None
    decoder.receive_data(data[first_length + 20 :])
    rest = decoder.take_unparsed()
    assert rest == data[first_length:]
    assert decoder.buffered == 0
    assert decoder.take_unparsed() == b""
    assert decoder.next_message() is None
    # Another reader can take the rest over.
    other: FrameDecoder[Message] = FrameDecoder()
    other.receive_data(rest)
    assert [other.next_message(), other.next_message(), other.next_message()] == [
        *batch[1:],
        None,
    ]


def test_take_unparsed_mid_header_resets_the_decoder() -> None:
    data = _message(1, ts=1).encode()
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(data[:4])
    decoder.receive_data(data[4:15])  # header decoded on the next call
    assert decoder.next_message() is None
    assert decoder.take_unparsed() == data[:15]
    # The decoder starts afresh: a new frame decodes from its first byte.
    follower = _message(2)
    decoder.receive_data(follower.encode())
    assert decoder.next_message() == follower
    assert decoder.buffered == 0


# -- (e) max_frame_size ------------------------------------------------------


def test_custom_max_frame_size() -> None:
    message = _message(1, ts=1)
    data = message.encode()
    at_limit: FrameDecoder[Message] = FrameDecoder(max_frame_size=len(data))
    at_limit.receive_data(data)
    assert at_limit.max_frame_size == len(data)
    assert at_limit.next_message() == message

    below: FrameDecoder[Message] = FrameDecoder(max_frame_size=len(data) - 1)
    below.receive_data(data[:9])
    match = rf"^frame of {len(data)} bytes refused: the limit is {len(data) - 1}$"
    with pytest.raises(FrameTooLargeError, match=match):
        below.next_message()


def test_default_max_frame_size_accepts_the_largest_frame() -> None:
    message = _largest_message()
    decoder: FrameDecoder[Message] = FrameDecoder()
    decoder.receive_data(message.encode())
    assert decoder.next_message() == message


@settings(max_examples=40, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.integers(9, 2000))
def test_max_frame_size_agrees_with_message_reader(batch: list[Message], limit: int) -> None:
    stream = b"".join(m.encode() for m in batch)
    outcomes = _decode_chunks([stream], max_frame_size=limit)
    assert outcomes == _read_stream(stream, max_frame_size=limit)
    # Messages up to the first frame over the limit, then the refusal.
    expected: list[Outcome] = []
    for m in batch:
        size = len(m.encode())
        if size > limit:
            text = f"frame of {size} bytes refused: the limit is {limit}"
            expected.append(("error", FrameTooLargeError, text))
            break
        expected.append(("message", m))
    assert outcomes == expected
