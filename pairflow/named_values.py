"""``NAME=VALUE`` settings (fees per market, contract sizes per symbol): one way to read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def named_items(value: Any, hint: str) -> list[tuple[str, Any]]:
    """The ``(name, value)`` items of a setting, names stripped, values as given.

    Accepts a mapping (a TOML table), ``(name, value)`` pairs, or the text ``A=1,B=2``.

    Raises:
        ValueError: text that is not ``NAME=VALUE`` items (``hint`` says how to write it), or a
            name given twice.

    >>> named_items("spot = 7.5, cm=4", "")
    [('spot', '7.5'), ('cm', '4')]
    """
    if isinstance(value, Mapping):
        items = [(str(k).strip(), v) for k, v in value.items()]
    elif isinstance(value, str):
        items = [tuple(p.strip() for p in part.partition("=")[::2])
                 for part in value.split(",") if part.strip()]
        if not items or any(not name or not number for name, number in items):
            raise ValueError(hint)
    else:
        items = [(str(name).strip(), number) for name, number in value]
    names = [name for name, _ in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given twice")
    return items
