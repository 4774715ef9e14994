"""The CBOR subset (RFC 8949) the Smithy RPC v2 CBOR protocol uses — which botocore now speaks to CloudWatch:
maps, arrays, text and byte strings, integers, floats, booleans, null, and epoch timestamps (tag 1)."""

from __future__ import annotations

import datetime as dt
import struct

BREAK = object()


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def encode(value: object) -> bytes:
    """``value`` as CBOR (a datetime as tag 1 with float seconds since the epoch)."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return b"\xc1" + encode(moment.timestamp())
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(encode(key) + encode(item) for key, item in value.items())
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def decode(data: bytes) -> object:
    """The one CBOR item ``data`` holds.

    Raises:
        ValueError: ``data`` is not one well-formed CBOR item.
    """
    try:
        value, position = _item(data, 0)
    # KeyError: an additional info or simple value outside the subset; TypeError: an unhashable map key;
    # OverflowError/OSError: a timestamp out of range; RecursionError: nested deeper than the stack.
    except (IndexError, ValueError, KeyError, TypeError, OverflowError, OSError, RecursionError, struct.error):
        value, position = BREAK, -1
    if value is BREAK or position != len(data):
        raise ValueError("not one well-formed CBOR item")
    return value


def _length(data: bytes, position: int, info: int) -> tuple[int | None, int]:
    if info < 24:
        return info, position
    if info == 31:
        return None, position
    size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
    return int.from_bytes(data[position:position + size], "big"), position + size


def _item(data: bytes, position: int) -> tuple[object, int]:
    initial = data[position]
    major, info = initial >> 5, initial & 0x1F
    position += 1
    if major == 7:
        if info in (20, 21, 22, 23):
            return {20: False, 21: True, 22: None, 23: None}[info], position
        if info == 31:
            return BREAK, position
        fmt, size = {25: (">e", 2), 26: (">f", 4), 27: (">d", 8)}[info]
        return struct.unpack(fmt, data[position:position + size])[0], position + size
    length, position = _length(data, position, info)
    if major == 0:
        return length, position
    if major == 1:
        return -1 - length, position
    if major in (2, 3):
        if length is None:  # indefinite: definite chunks until a break
            chunks = []
            while True:
                chunk, position = _item(data, position)
                if chunk is BREAK:
                    joined = b"".join(c.encode() if isinstance(c, str) else c for c in chunks)
                    return (joined.decode("utf-8") if major == 3 else joined), position
                chunks.append(chunk)
        raw = data[position:position + length]
        if len(raw) != length:
            raise ValueError("truncated")
        return (raw.decode("utf-8") if major == 3 else bytes(raw)), position + length
    if major == 4:
        items = []
        while length is None or len(items) < length:
            item, position = _item(data, position)
            if item is BREAK:
                break
            items.append(item)
        return items, position
    if major == 5:
        mapping = {}
        while length is None or len(mapping) < length:
            key, position = _item(data, position)
            if key is BREAK:
                break
            mapping[key], position = _item(data, position)
        return mapping, position
    tagged, position = _item(data, position)  # major 6: a tag; 1 is an epoch timestamp
    if length == 1 and isinstance(tagged, (int, float)):
        return dt.datetime.fromtimestamp(tagged, dt.timezone.utc), position
    return tagged, position
