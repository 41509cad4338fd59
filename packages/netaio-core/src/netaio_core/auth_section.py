"""Codec of the auth section: a dict of ``str -> bytes | int``.

The encoding is byte-identical to what the ``packify`` library (0.4) produces
for such a dict, so that netaio 0.0.2 peers read our auth sections and we read
theirs. Only that subset is accepted: any other type code, a duplicate key,
invalid UTF-8, a truncated item or trailing bytes is a ``DecodeError``.

Layout (every length and count big-endian; ``cat`` is a length category in
the top two bits of a code byte: 0x40 -> u8, 0x80 -> u16, 0xC0 -> u32)::

    dict   := cat|0x0D  item_cat  count  len[count]  pair[count]
    pair   := 0x4C  item_cat  0x02  len[2]  key  value   (a 2-tuple)
    key    := cat|0x03  len  utf-8
    value  := cat|0x01  len  bytes                    (bytes)
            | cat|0x04  magnitude                     (int >= 0, < 2**32)
            | cat|0x05  magnitude                     (int < 0, |v| < 2**32)
            | 0x04|0x05  u8 size  magnitude           (larger ints)
            | 0x0E|0x0F  u32 size  magnitude          (ints over 255 bytes)

Pairs are sorted by their encoded bytes, which makes the encoding canonical.
"""

from __future__ import annotations

from struct import Struct

from .errors import DecodeError

__all__ = ["AuthValue", "decode_auth_fields", "encode_auth_fields", "EMPTY_AUTH_SECTION"]

AuthValue = bytes | int
"""The value types an auth field may hold on the wire."""

_STR, _BYTES, _INT, _NEG_INT, _TUPLE, _DICT, _BIG_INT, _BIG_NEG = 3, 1, 4, 5, 12, 13, 14, 15
_CAT1, _CAT2, _CAT3 = 0x40, 0x80, 0xC0
_U8, _U16, _U32 = Struct("!B"), Struct("!H"), Struct("!I")
# Length category code -> (struct for one length, its size).
_LEN_FORMATS = {_CAT1: ("B", 1), _CAT2: ("H", 2), _CAT3: ("I", 4)}

EMPTY_AUTH_SECTION = b"\x4d\x40\x00"
"""The encoding of an empty dict."""


def _category(n: int) -> int:
    if n < 0x100:
        return _CAT1
    if n < 0x10000:
        return _CAT2
    return _CAT3


def _prefixed(code: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x100:
        return bytes((_CAT1 | code, n)) + payload
    if n < 0x10000:
        return bytes((_CAT2 | code,)) + _U16.pack(n) + payload
    return bytes((_CAT3 | code,)) + _U32.pack(n) + payload


def _encode_int(value: int) -> bytes:
    code = _NEG_INT if value < 0 else _INT
    magnitude = -value if value < 0 else value
    if magnitude < 0x100:
        return bytes((_CAT1 | code, magnitude))
    if magnitude < 0x10000:
        return bytes((_CAT2 | code,)) + _U16.pack(magnitude)
    if magnitude < 0x100000000:
        return bytes((_CAT3 | code,)) + _U32.pack(magnitude)
    size = (magnitude.bit_length() + 7) // 8
    raw = magnitude.to_bytes(size, "big")
    if size <= 255:
        return bytes((code, size)) + raw
    big = _BIG_NEG if value < 0 else _BIG_INT
    return bytes((big,)) + _U32.pack(size) + raw


def _container(code: int, items: list[bytes]) -> bytes:
    """Encode pre-encoded items behind a container header."""
    count = len(items)
    if count < 0x100:  # the usual, all-u8 header
        try:
            short = bytes(map(len, items))  # ValueError if an item is 256 bytes or more
        except ValueError:
            pass
        else:
            return bytes((_CAT1 | code, _CAT1, count)) + short + b"".join(items)
    lengths = [len(item) for item in items]
    item_cat = _category(max(lengths, default=0))
    count_cat = _category(count)
    fmt = "!BB" + _LEN_FORMATS[count_cat][0] + _LEN_FORMATS[item_cat][0] * count
    return Struct(fmt).pack(count_cat | code, item_cat, count, *lengths) + b"".join(items)


# (field name, value length) -> the bytes of a pair before a bytes value, for
# the few names and lengths an application uses (bounded: see _encode_pair).
_PAIR_HEADS: dict[tuple[str, int], bytes] = {}
_PAIR_HEADS_MAX = 64


def _encode_pair(key: str, value: AuthValue) -> bytes:
    if type(key) is not str:
        raise TypeError(f"auth field names must be str, not {type(key).__name__}")
    if type(value) is bytes:
        head = _PAIR_HEADS.get((key, len(value)))
        if head is not None:
            return head + value
    raw_key = key.encode()
    nk = len(raw_key)
    if type(value) is bytes and nk < 0xFE and len(value) < 0xFE:  # the usual, all-u8 pair
        nv = len(value)
        head = bytes((0x4C, _CAT1, 2, nk + 2, nv + 2, _CAT1 | _STR, nk))
        head += raw_key + bytes((_CAT1 | _BYTES, nv))
        if len(_PAIR_HEADS) < _PAIR_HEADS_MAX:
            _PAIR_HEADS[key, nv] = head
        return head + value
    encoded_key = _prefixed(_STR, raw_key)
    if type(value) is bytes:
        encoded_value = _prefixed(_BYTES, value)
    elif type(value) is int:
        encoded_value = _encode_int(value)
    else:
        raise TypeError(f"auth field {key!r} must be bytes or int, not {type(value).__name__}")
    lk, lv = len(encoded_key), len(encoded_value)
    if lk < 0x100 and lv < 0x100:
        return bytes((0x4C, _CAT1, 2, lk, lv)) + encoded_key + encoded_value
    return _container(_TUPLE, [encoded_key, encoded_value])


def encode_auth_fields(fields: dict[str, AuthValue]) -> bytes:
    """Encode ``fields`` as packify does; raise ``TypeError`` for other types."""
    if not fields:
        return EMPTY_AUTH_SECTION
    pairs = [_encode_pair(k, v) for k, v in fields.items()]
    pairs.sort()
    return _container(_DICT, pairs)


class _Cursor:
    """Reads length-checked pieces of one buffer; every overrun is a DecodeError."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, n: int, what: str) -> bytes:
        pos = self.pos
        if n > self.end - pos:
            raise DecodeError(
                f"auth section truncated: {what} needs {n} bytes, {self.end - pos} left"
            )
        self.pos = pos + n
        return self.data[pos : pos + n]

    def byte(self, what: str) -> int:
        if self.pos >= self.end:
            raise DecodeError(f"auth section truncated: missing {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def length(self, category: int, what: str) -> int:
        fmt = _LEN_FORMATS.get(category)
        if fmt is None:
            raise DecodeError(f"auth section malformed: invalid length category in {what}")
        return int.from_bytes(self.take(fmt[1], what), "big")


def _decode_container(cur: _Cursor, expected: int, what: str) -> list[_Cursor]:
    """Read a container header of type ``expected``; return one cursor per item."""
    code = cur.byte(f"{what} type code")
    if code & 0x3F != expected:
        raise DecodeError(
            f"auth section malformed: expected a {what}, found type code 0x{code:02x}"
        )
    item_cat = cur.byte(f"{what} item length category")
    count = cur.length(code & 0xC0, f"{what} item count")
    fmt = _LEN_FORMATS.get(item_cat)
    if fmt is None:
        raise DecodeError(
            f"auth section malformed: invalid item length category 0x{item_cat:02x} in {what}"
        )
    width = fmt[1]
    table = cur.take(width * count, f"{what} length table")
    items = []
    for i in range(count):
        n = int.from_bytes(table[i * width : (i + 1) * width], "big")
        start = cur.pos
        cur.take(n, f"{what} item")
        items.append(_Cursor(cur.data, start, start + n))
    return items


def _decode_value(cur: _Cursor, key: str) -> AuthValue:
    code = cur.byte("value type code")
    kind, category = code & 0x3F, code & 0xC0
    if kind == _BYTES and category:
        return cur.take(cur.length(category, "bytes length"), "bytes value")
    if kind in (_INT, _NEG_INT):
        if category:
            magnitude = cur.length(category, "int value")
        else:
            magnitude = int.from_bytes(cur.take(cur.byte("int size"), "int value"), "big")
        return -magnitude if kind == _NEG_INT else magnitude
    if kind in (_BIG_INT, _BIG_NEG) and not category:
        size = int.from_bytes(cur.take(4, "big int size"), "big")
        magnitude = int.from_bytes(cur.take(size, "big int value"), "big")
        return -magnitude if kind == _BIG_NEG else magnitude
    raise DecodeError(
        f"auth field {key!r} has unsupported type code 0x{code:02x}; values must be bytes or int"
    )


def _decode_pair(cur: _Cursor) -> tuple[str, AuthValue]:
    parts = _decode_container(cur, _TUPLE, "key/value pair")
    if len(parts) != 2:
        raise DecodeError(f"auth section malformed: a pair has {len(parts)} items, not 2")
    key_cur, value_cur = parts
    code = key_cur.byte("key type code")
    if code & 0x3F != _STR or not code & 0xC0:
        raise DecodeError(f"auth field name must be str, found type code 0x{code:02x}")
    raw = key_cur.take(key_cur.length(code & 0xC0, "key length"), "key")
    try:
        key = raw.decode()
    except UnicodeDecodeError:
        raise DecodeError("auth field name is not valid UTF-8") from None
    if key_cur.pos != key_cur.end:
        raise DecodeError(f"auth field name {key!r} is followed by stray bytes")
    value = _decode_value(value_cur, key)
    if value_cur.pos != value_cur.end:
        raise DecodeError(f"auth field {key!r} is followed by stray bytes")
    return key, value


# Code byte of an int value -> bytes of its magnitude (u8, u16, u32 lengths).
_INT_WIDTHS = {
    _CAT1 | _INT: 1, _CAT1 | _NEG_INT: 1,
    _CAT2 | _INT: 2, _CAT2 | _NEG_INT: 2,
    _CAT3 | _INT: 4, _CAT3 | _NEG_INT: 4,
}  # fmt: skip


def _decode_small(data: bytes) -> dict[str, AuthValue] | None:
    """Decode the usual shape in one pass: every count and length a u8, every
    value bytes or an int below 2**32. Returns None for anything else,
    valid or not, and ``decode_auth_fields`` then decides with the full
    decoder; so this accepts a subset of what that accepts, never more."""
    n = len(data)
    if n < 3 or data[0] != _CAT1 | _DICT or data[1] != _CAT1:
        return None
    count = data[2]
    pos = 3 + count
    if pos > n:
        return None
    fields: dict[str, AuthValue] = {}
    for size in data[3:pos]:
        end = pos + size
        if size < 9 or end > n or data[pos] != 0x4C or data[pos + 1] != _CAT1 or data[pos + 2] != 2:
            return None
        lk, lv = data[pos + 3], data[pos + 4]
        # key: 0x43 len utf-8; value: 0x41 len bytes, or an int code and magnitude
        k = pos + 5
        v = k + lk
        if 5 + lk + lv != size or lk < 2 or lv < 2 or data[k] != _CAT1 | _STR:
            return None
        if data[k + 1] != lk - 2:
            return None
        try:
            key = data[k + 2 : v].decode()
        except UnicodeDecodeError:
            return None
        code = data[v]
        value: AuthValue
        if code == _CAT1 | _BYTES:
            if data[v + 1] != lv - 2:
                return None
            value = data[v + 2 : end]
        elif _INT_WIDTHS.get(code) == lv - 1:
            value = int.from_bytes(data[v + 1 : end], "big")
            if code & 0x3F == _NEG_INT:
                value = -value
        else:
            return None
        if key in fields:
            return None
        fields[key] = value
        pos = end
    return fields if pos == n else None


def auth_field_count(data: bytes) -> int:
    """How many fields an auth section says it holds, read from its first
    bytes only (0 for an empty section): a limit can refuse a section
    before its fields are built. ``DecodeError`` for a malformed start."""
    if not data or data == EMPTY_AUTH_SECTION:
        return 0
    cur = _Cursor(data)
    code = cur.byte("dict code")
    if code & 0x3F != _DICT:
        raise DecodeError("auth section malformed: not a dict")
    cur.byte("dict item category")
    return cur.length(code & 0xC0, "dict item count")


def decode_auth_fields(data: bytes) -> dict[str, AuthValue]:
    """Decode an auth section; raise ``DecodeError`` for anything malformed.

    Empty input means no auth section and decodes to an empty dict.
    """
    if data == EMPTY_AUTH_SECTION or not data:
        return {}
    if type(data) is not bytes:
        data = bytes(data)
    small = _decode_small(data)
    if small is not None:
        return small
    cur = _Cursor(data)
    fields: dict[str, AuthValue] = {}
    for item in _decode_container(cur, _DICT, "dict"):
        key, value = _decode_pair(item)
        if key in fields:
            raise DecodeError(f"auth section malformed: duplicate field {key!r}")
        fields[key] = value
        if item.pos != item.end:
            raise DecodeError(f"auth section malformed: stray bytes after field {key!r}")
    if cur.pos != cur.end:
        raise DecodeError(f"auth section malformed: {cur.end - cur.pos} stray bytes after the dict")
    return fields
