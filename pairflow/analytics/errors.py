"""Errors raised by the analytics core.

Both are :class:`ValueError` subclasses (callers that validate with ``except ValueError``
keep working) and :class:`pairflow.errors.PairflowError` subclasses (the CLI prints them as
one line).
"""

from pairflow.errors import ConfigError, PairflowError


class AnalyticsError(PairflowError, ValueError):
    """Base class of the analytics core's errors."""


class SettingsError(AnalyticsError, ConfigError):
    """Estimator settings out of bounds; the message gives the bound and the value.

    A :class:`~pairflow.errors.ConfigError` too: a bad setting is a configuration mistake,
    whether it came from a flag, the TOML file or the dashboard's what-if form.
    """


class InputError(AnalyticsError):
    """A bar rejected at the boundary (non-finite, or non-positive under ``price="log"``)."""
