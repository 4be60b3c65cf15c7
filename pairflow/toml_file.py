"""TOML configuration files: the one way pairflow reads them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pairflow.errors import ConfigError


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a TOML file.

    Raises:
        ConfigError: the file cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error
