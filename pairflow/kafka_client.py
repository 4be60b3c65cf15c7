"""librdkafka settings for every Kafka client of a run: the ``[kafka_client]`` table.

Security settings (``security.protocol``, ``sasl.*``, ``ssl.*`` …) come from the TOML table
``[kafka_client]`` and from ``PAIRFLOW_KAFKA_CLIENT_<NAME>`` variables; values may be secrets,
so no message here ever includes one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pairflow.errors import ConfigError
from pairflow.toml_file import read_toml

#: Prefix of the variables that set one librdkafka setting each.
KAFKA_CLIENT_ENV = "PAIRFLOW_KAFKA_CLIENT_"
#: librdkafka settings pairflow sets itself: its guarantees and addresses rest on them.
_KAFKA_OWNED = ("bootstrap.servers", "enable.idempotence", "acks", "group.id",
                "enable.auto.commit", "delivery.report.only.error", "enable.partition.eof")
_KAFKA_NAME = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")


def parse_kafka_client(value: Any) -> tuple[tuple[str, str], ...]:
    """``[kafka_client]`` settings as sorted ``(name, text)`` pairs.

    Raises:
        ConfigError: on a malformed name, a setting pairflow owns or a value that is not a
            string, number or boolean; the message names the setting, never its value.
    """
    if not isinstance(value, Mapping):
        raise ConfigError("kafka_client must be a TOML table [kafka_client] or "
                          f"{KAFKA_CLIENT_ENV}<NAME> variables")
    settings = {}
    for name, setting in flat_table(value).items():
        if not _KAFKA_NAME.match(name):
            raise ConfigError(f"kafka_client setting {name!r} is not a librdkafka name like "
                              "security.protocol")
        if name in _KAFKA_OWNED:
            raise ConfigError(f"kafka_client setting {name!r} is set by pairflow (use --kafka "
                              "for the brokers)")
        if isinstance(setting, bool):
            setting = "true" if setting else "false"
        if not isinstance(setting, str | int | float):
            raise ConfigError(f"kafka_client setting {name!r} must be a string, number or "
                              "boolean")
        settings[name] = str(setting)
    return tuple(sorted(settings.items()))


def flat_table(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML dotted keys (``security.protocol = …`` is a nested table) as dotted names."""
    flat: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, Mapping):
            flat.update(flat_table(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def kafka_client_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """``PAIRFLOW_KAFKA_CLIENT_SASL_PASSWORD=…`` → ``{"sasl.password": …}``."""
    return {name[len(KAFKA_CLIENT_ENV):].lower().replace("_", "."): value
            for name, value in env.items() if name.startswith(KAFKA_CLIENT_ENV) and value}


def kafka_client_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``[kafka_client]`` librdkafka settings alone, for clients outside a flow (dashboard).

    Read as :func:`load_config` reads them: ``PAIRFLOW_KAFKA_CLIENT_*`` variables over the
    table of the TOML file named by ``PAIRFLOW_CONFIG``.

    Raises:
        ConfigError: on an unreadable file or an invalid setting.
    """
    env = os.environ if env is None else env
    toml_path = env.get("PAIRFLOW_CONFIG")
    from_toml = read_toml(toml_path).get("kafka_client", {}) if toml_path else {}
    if not isinstance(from_toml, Mapping):
        return dict(parse_kafka_client(from_toml))  # raises the one error message
    return dict(parse_kafka_client({**flat_table(from_toml), **kafka_client_from_env(env)}))
