"""Many frames or messages decoded by one msgspec call: joined into one JSON array.

One call per batch instead of one per frame is what makes the decode cheap; the join copies the
batch's bytes once. A frame that is not exactly one JSON value (empty, or two objects) would
shift every later frame against its decoded item, so the batch is then refused as a whole and
its callers decode it frame by frame, where the bad frame gets its reason.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: What decoding bad input can raise: msgspec's errors, and invalid UTF-8 in a string.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def json_array(frames: list[bytes]) -> bytes:
    """The frames as the items of one JSON array.

    >>> json_array([b'{"a":1}', b'{"b":2}'])
    b'[{"a":1},{"b":2}]'
    """
    if not frames:
        return b"[]"
    items = frames.copy()
    items[0] = b"[" + items[0]
    items[-1] += b"]"
    return b",".join(items)


def decode_batch(frames: list[bytes | None], *decoders: msgspec.json.Decoder) -> list[Any] | None:
    """Every frame decoded by one call of a ``list[…]`` decoder, in order, or None.

    The decoders are tried in turn, on one join of the frames: a narrow type first is cheaper
    when most batches fit it. None when a frame is bad for all of them, missing (a Kafka
    message without a value) or is not exactly one item: then decode frame by frame.
    """
    try:
        joined = json_array(frames)
    except TypeError:  # a missing frame in the join
        return None
    for decoder in decoders:
        try:
            decoded = decoder.decode(joined)
        except DECODE_ERRORS:
            continue
        return decoded if len(decoded) == len(frames) else None
    return None
