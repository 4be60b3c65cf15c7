"""Errors raised by pairflow.

Every error a user can cause (bad flags, bad configuration, a missing file, an unwritable
store) is a :class:`PairflowError`; the CLI prints it as one line and exits with code 2.
"""


class PairflowError(Exception):
    """Base class of every error pairflow reports to a user."""


class ConfigError(PairflowError):
    """Configuration that cannot work: the message says what to fix."""


class InputFileError(PairflowError):
    """An input file that is missing, unreadable or of an unknown layout."""


class StoreError(PairflowError):
    """The embedded SQLite store cannot be opened or written."""


class SinkError(PairflowError):
    """A sink (Kafka, store) failed to deliver records."""
