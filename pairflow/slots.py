"""Faster ``__init__`` for frozen slots dataclasses (records made by the million)."""

from __future__ import annotations

import dataclasses


def init_through_slots(cls: type) -> type:
    """Give a frozen slots dataclass (without defaults) a faster ``__init__``, same checks.

    The generated ``__init__`` of a frozen dataclass calls ``object.__setattr__`` once per
    field; setting each slot through its descriptor does the same at half the cost — a
    replay makes a bar per window, 1.2 M quiet ones for one illiquid symbol-month at 1 s.
    Instances stay frozen.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    scope = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(names)}):\n{body}", scope)  # noqa: S102
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init
    return cls
