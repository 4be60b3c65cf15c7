"""Numpy views of Arrow arrays.

Not through pyarrow's ``to_numpy``: it imports pandas, a second of start-up for a replay that
never needs it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_NUMPY_TYPES = {pa.int64(): np.int64, pa.int32(): np.int32, pa.float64(): np.float64,
                pa.uint8(): np.uint8}


def numpy_view(array: pa.Array) -> np.ndarray:
    """A numpy view of an Arrow int32, int64, float64 or bool array without nulls.

    Straight on its buffer (zero-copy); a bool array is bit-packed, so it is first cast to one
    byte per value.
    """
    if pa.types.is_boolean(array.type):
        return numpy_view(pc.cast(array, pa.uint8())).view(np.bool_)
    dtype = np.dtype(_NUMPY_TYPES[array.type])
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * dtype.itemsize)
