"""Configuration of a pairflow run, from CLI flags, ``PAIRFLOW_*`` variables and a TOML file.

Precedence: CLI flag > environment variable > TOML file > default. Every value is checked when
the configuration is built; a :class:`~pairflow.errors.ConfigError` says what to fix.

TOML keys and environment names are the field names (``window = 120`` /
``PAIRFLOW_WINDOW=120``); lists are TOML arrays or comma-separated strings.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pairflow.errors import ConfigError
from pairflow.timeframes import parse_timeframes

SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
SourceKind = Literal["replay", "live", "kafka"]
MIN_WINDOW = 10


def parse_lag(value: str | int) -> str:
    """Normalise a lag policy: ``aic``, ``bic`` or a fixed number of lags."""
    text = str(value).strip().lower()
    if text in ("aic", "bic") or (text.isdigit() and int(text) < 1000):
        return text
    raise ConfigError(f"lag policy {value!r} is not aic, bic or a whole number of lags")


def parse_speed(value: str | float | None) -> float | None:
    """Replay speed: ``max`` (None: as fast as possible), ``realtime`` (1.0) or a multiple."""
    if value is None or str(value).strip().lower() in ("", "max"):
        return None
    text = str(value).strip().lower()
    if text == "realtime":
        return 1.0
    try:
        speed = float(text.rstrip("x"))
    except ValueError:
        speed = 0.0
    if not speed > 0 or speed == float("inf"):
        raise ConfigError(f"replay speed {value!r}: use max, realtime or a positive multiple (10)")
    return speed


def _split(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(i).strip() for i in items if str(i).strip())


@dataclass(frozen=True)
class PairflowConfig:
    """Everything a flow needs; checked in ``__post_init__``.

    Attributes:
        symbols: exchange symbols to ingest (upper case).
        pairs: pairs ``Y/X`` (Y regressed on X); both legs must be among ``symbols``.
        timeframes: bar timeframes, shortest first.
        window: bars in the rolling estimation window (>= 10).
        price: price transform of the closes, ``log`` or ``raw``.
        lag: ADF/EG lag policy, ``aic``, ``bic`` or a fixed number.
        entry_z: |z| at or above which an alert enters.
        exit_z: |z| below which an entered alert exits (< ``entry_z``).
        cooldown_bars: bars after an exit during which no new entry fires.
        lateness_s: allowed lateness of a trade behind the newest trade time, seconds.
        source: ``replay`` (files), ``live`` (Binance WebSocket) or ``kafka`` (ticks topic).
        files: input files of a replay.
        speed: replay pace, None for as fast as possible, else a multiple of real time.
        store: SQLite store path, or None.
        kafka: Kafka bootstrap servers, or None.
        kafka_prefix: topic name prefix.
        kafka_partitions: partitions of topics pairflow creates.
        ticks_to_kafka: also publish normalised ticks to the ``ticks`` topic.
        kafka_timeout_s: how long records wait for an unreachable broker before the run
            fails with an error.
        kafka_follow: with the ``kafka`` source, keep reading new ticks (False: stop at the
            topic's current end, for reprocessing).
        market: ``spot`` or ``usdm`` (USDⓈ-M futures), for the live source.
        ws_url: base WebSocket URL of the live source (None: Binance's).
        rest_url: base REST URL for backfills (None: Binance's).
        record_dir: directory where the live source records raw frames, or None.
        duration_s: stop a live run after this many seconds (None: run until stopped).
        recovery_dir: Bytewax recovery partitions; a run with it resumes after a crash from
            the last snapshot.
        snapshot_s: seconds between snapshots (the epoch length, also the backpressure step).
        store_timeout_s: how long a store write waits for a lock held by another process.
    """

    symbols: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ("1s", "1m", "5m")
    window: int = 300
    price: str = "log"
    lag: str = "aic"
    entry_z: float = 2.0
    exit_z: float = 0.5
    cooldown_bars: int = 0
    lateness_s: float = 2.0
    source: SourceKind = "replay"
    files: tuple[str, ...] = ()
    speed: float | None = None
    store: str | None = None
    kafka: str | None = None
    kafka_prefix: str = "pairflow."
    kafka_partitions: int = 3
    ticks_to_kafka: bool = False
    kafka_follow: bool = True
    kafka_timeout_s: float = 120.0
    market: str = "spot"
    ws_url: str | None = None
    rest_url: str | None = None
    record_dir: str | None = None
    duration_s: float | None = None
    recovery_dir: str | None = None
    store_timeout_s: float = 30.0
    snapshot_s: float = 10.0

    def __post_init__(self) -> None:
        bad = [s for s in self.symbols if not SYMBOL.match(s)]
        if bad:
            raise ConfigError(f"malformed symbol(s) {bad}: use upper-case names like BTCUSDT")
        if not self.symbols:
            raise ConfigError("no symbols: pass e.g. --symbols BTCUSDT,ETHUSDT")
        if len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"symbols {list(self.symbols)} repeat a name")
        for pair in self.pairs:
            legs = pair.split("/")
            if len(legs) != 2 or not all(legs):
                raise ConfigError(f"pair {pair!r} must be written Y/X, e.g. BTCUSDT/ETHUSDT")
            unknown = [leg for leg in legs if leg not in self.symbols]
            if unknown:
                raise ConfigError(
                    f"pair {pair} uses {unknown} which is not among --symbols {list(self.symbols)}"
                )
            if legs[0] == legs[1]:
                raise ConfigError(f"pair {pair} has the same symbol on both legs")
        if len(set(self.pairs)) != len(self.pairs):
            raise ConfigError(f"pairs {list(self.pairs)} repeat a pair")
        parse_timeframes(list(self.timeframes))
        if self.window < MIN_WINDOW:
            raise ConfigError(f"window must be at least {MIN_WINDOW} bars, got {self.window}")
        if self.price not in ("log", "raw"):
            raise ConfigError(f"price transform {self.price!r} is not log or raw")
        parse_lag(self.lag)
        if not (self.entry_z > 0 and self.exit_z >= 0):
            raise ConfigError(
                f"thresholds must be entry_z > 0 and exit_z >= 0, got {self.entry_z}, {self.exit_z}"
            )
        if self.exit_z >= self.entry_z:
            raise ConfigError(
                f"exit threshold {self.exit_z} must be below the entry threshold {self.entry_z}"
            )
        if self.cooldown_bars < 0:
            raise ConfigError(f"cooldown must be >= 0 bars, got {self.cooldown_bars}")
        if not 0 <= self.lateness_s <= 3600:
            raise ConfigError(f"lateness must be between 0 and 3600 s, got {self.lateness_s}")
        if self.source not in ("replay", "live", "kafka"):
            raise ConfigError(f"source {self.source!r} is not replay, live or kafka")
        if self.source == "replay" and not self.files:
            raise ConfigError("a replay needs input files")
        if self.market not in ("spot", "usdm"):
            raise ConfigError(f"market {self.market!r} is not spot or usdm")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"duration must be > 0 s, got {self.duration_s}")
        if (self.ticks_to_kafka or self.source == "kafka") and not self.kafka:
            raise ConfigError("ticks in Kafka need a broker: give --kafka BOOTSTRAP")
        if not self.snapshot_s >= 1 or self.snapshot_s != int(self.snapshot_s):
            raise ConfigError(f"snapshot interval must be a whole number of seconds >= 1, got "
                              f"{self.snapshot_s}")
        if self.kafka_partitions < 1:
            raise ConfigError(f"kafka_partitions must be >= 1, got {self.kafka_partitions}")

    @property
    def lateness_us(self) -> int:
        """Allowed lateness in µs."""
        return round(self.lateness_s * 1_000_000)

    def legs(self, pair: str) -> tuple[str, str]:
        """The (Y, X) symbols of a pair."""
        y, x = pair.split("/")
        return y, x


_FIELDS = {f.name: f for f in dataclasses.fields(PairflowConfig)}
_LISTS = {"symbols", "pairs", "timeframes", "files"}
_INTS = {"window", "cooldown_bars", "kafka_partitions"}
_FLOATS = {"entry_z", "exit_z", "lateness_s", "duration_s", "snapshot_s", "store_timeout_s",
           "kafka_timeout_s"}


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _LISTS:
            items = _split(value)
            if name == "symbols":
                return tuple(s.upper() for s in items)
            if name == "pairs":
                return tuple(p.upper() for p in items)
            if name == "timeframes":
                return parse_timeframes(list(items)) if items else ()
            return items
        if name in _INTS:
            return int(value)
        if name in _FLOATS:
            return float(value)
        if name == "lag":
            return parse_lag(value)
        if name == "speed":
            return parse_speed(value)
        if name in ("ticks_to_kafka", "kafka_follow"):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        return None if value is None else str(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} = {value!r} is not a valid value: {error}") from error


def load_config(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    toml_path: str | Path | None = None,
) -> PairflowConfig:
    """Build the configuration: CLI flags over ``PAIRFLOW_*`` variables over a TOML file.

    Args:
        cli: values given on the command line (None values are "not given").
        env: the environment (default ``os.environ``); ``PAIRFLOW_CONFIG`` names a TOML file.
        toml_path: a TOML file; overrides ``PAIRFLOW_CONFIG``.

    Raises:
        ConfigError: on an unknown key, an unreadable file or an invalid value.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    toml_path = toml_path or env.get("PAIRFLOW_CONFIG")
    if toml_path:
        try:
            with open(toml_path, "rb") as handle:
                table = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read config file {toml_path}: {error.strerror}") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {toml_path} is not valid TOML: {error}") from error
        unknown = sorted(set(table) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown} in {toml_path}; valid keys: {sorted(_FIELDS)}"
            )
        values.update({k: _coerce(k, v) for k, v in table.items()})
    for name in _FIELDS:
        text = env.get(f"PAIRFLOW_{name.upper()}")
        if text is not None and text != "":
            values[name] = _coerce(name, text)
    for name, value in (cli or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = _coerce(name, value)
    return PairflowConfig(**values)
