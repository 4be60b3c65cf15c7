"""Errors raised by the analytics core.

Both are :class:`ValueError` subclasses (callers that validate with ``except ValueError``
keep working) and :class:`pairflow.errors.PairflowError` subclasses (the CLI prints them as
one line).
"""

from pairflow.errors import PairflowError


class AnalyticsError(PairflowError, ValueError):
    """Base class of the analytics core's errors."""


class SettingsError(AnalyticsError):
    """Estimator settings out of bounds; the message gives the bound and the value."""


class InputError(AnalyticsError):
    """A bar rejected at the boundary (non-finite, or non-positive under ``price="log"``)."""
