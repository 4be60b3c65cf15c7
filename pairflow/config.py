"""Configuration of a pairflow run, from CLI flags, ``PAIRFLOW_*`` variables and a TOML file.

Precedence: CLI flag > environment variable > TOML file > default. Every value is checked when
the configuration is built; a :class:`~pairflow.errors.ConfigError` says what to fix.

TOML keys and environment names are the field names (``window = 120`` /
``PAIRFLOW_WINDOW=120``); lists are TOML arrays or comma-separated strings. The window may be
given per timeframe: ``window = {1s = 300, 1m = 120, 5m = 48}`` in TOML,
``1s=300,1m=120,5m=48`` as text.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pairflow.analytics.settings import HedgeMethod, parse_lag
from pairflow.contracts import contract_size, parse_contract_sizes
from pairflow.costs import DEFAULT_FEE_BPS, parse_fee_bps
from pairflow.errors import ConfigError
from pairflow.kafka_client import flat_table, kafka_client_from_env, parse_kafka_client
from pairflow.pair_settings import PairSettings, WindowSpec, parse_window
from pairflow.pnl import DEFAULT_NOTIONAL, PnlSettings, check_notional
from pairflow.records import SYMBOL_PATTERN, split_symbol
from pairflow.timeframes import parse_timeframes
from pairflow.toml_file import read_toml
from pairflow.universe.settings import ScanSettings

T = TypeVar("T")

SourceKind = Literal["replay", "live", "kafka"]
Market = Literal["spot", "usdm", "cm"]
#: How ticks are published to Kafka: many of a symbol per message as columns, or one per message.
KafkaTickForm = Literal["batch", "tick"]
MARKETS: tuple[str, ...] = get_args(Market)


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
        symbols: exchange symbols to ingest (upper case); the universe's are added.
        pairs: pairs ``Y/X`` (Y regressed on X); both legs must be among ``symbols``.
        timeframes: bar timeframes, shortest first.
        window: bars in the rolling estimation window (>= 10): one number for every
            timeframe, or ``(timeframe, bars)`` pairs naming each timeframe once.
        price: price transform of the closes, ``log`` or ``raw``.
        lag: ADF/EG lag policy, ``aic``, ``bic`` or a fixed number.
        beta: hedge ratio the spread, z-score and alerts follow: ``ols``, ``kalman``, ``rls``.
        kalman_delta: Kalman random-walk variance ``delta / (1 - delta)`` of α and β per bar.
        kalman_obs_var: Kalman observation variance (None: the first window's OLS one).
        rls_lambda: RLS forgetting factor in (0, 1].
        entry_z: |z| at or above which an alert enters.
        exit_z: |z| below which an entered alert exits (< ``entry_z``).
        cooldown_bars: bars after an exit during which no new entry fires.
        max_pvalue: alert an entry only while the pair's Engle-Granger p-value is below this
            (None: off); for a pair with both legs in ``universe``, its universe q-value.
        net_of_cost: alert an entry only when the expected reversion to the exit threshold
            beats the round-trip cost at the quotes (needs ``quotes``).
        lateness_s: allowed lateness of a trade behind the newest trade time, seconds.
        source: ``replay`` (files), ``live`` (Binance WebSocket) or ``kafka`` (ticks topic).
        files: input files of a replay.
        speed: replay pace, None for as fast as possible, else a multiple of real time.
        store: SQLite store path, or None.
        kafka: Kafka bootstrap servers, or None.
        kafka_prefix: topic name prefix.
        kafka_partitions: partitions of topics pairflow creates.
        ticks_to_kafka: also publish normalised ticks to the ``ticks`` topic.
        kafka_tick_form: how ticks are published: ``batch`` (a symbol's run of ticks per
            message, as columns; the fast form) or ``tick`` (one tick per message, for
            consumers that want per-tick records). Workers read both.
        quotes: read ``@bookTicker`` quotes and write a quote bar (:class:`QuoteBar`) per
            symbol and bar to the ``quotes`` table/topic.
        contract_sizes: USD per contract of COIN-M symbols, as ``(exchange symbol, USD)``
            pairs overriding Binance's specification (100 for BTC contracts, 10 for others).
        fee_bps: taker fee per market (``spot``, ``usdm``, ``cm``) in bps of the traded
            notional, as sorted ``(market, bps)`` pairs; given as ``spot=10,cm=4`` or a TOML
            table, unnamed markets keep their defaults. Used by the executable spread and the
            paper P&L.
        notional: leg Y's notional per paper trade, in the quote currency.
        pnl: paper-trade the alert rule of every watched pair (``trades`` and ``pnl``).
        kafka_timeout_s: how long records wait for an unreachable broker before the run
            fails with an error.
        kafka_follow: with the ``kafka`` source, keep reading new ticks (False: stop at the
            topic's current end, for reprocessing).
        kafka_client: librdkafka settings (``security.protocol``, ``sasl.*``, ``ssl.*`` …) for
            every Kafka client of the run, as sorted ``(name, value)`` pairs; from the TOML
            table ``[kafka_client]`` and ``PAIRFLOW_KAFKA_CLIENT_<NAME>`` variables (``_`` for
            ``.``). Never shown: values may be secrets.
        ingest_only: only normalise and publish ticks, heartbeats, gaps and health to Kafka
            (``pairflow ingest``); workers reading the ``ticks`` topic make the bars.
        market: ``spot``, ``usdm`` (USDⓈ-M futures) or ``cm`` (COIN-M futures), for the live
            source and the bare symbols of a replay.
        ws_url: base WebSocket URL of the live source (None: Binance's).
        rest_url: base REST URL for backfills (None: Binance's).
        record_dir: directory where the live source records raw frames, or None.
        duration_s: stop a live run after this many seconds (None: run until stopped).
        recovery_dir: Bytewax recovery partitions; a run with it resumes after a crash from
            the last snapshot.
        snapshot_s: seconds between snapshots (the epoch length, also the backpressure step).
        store_timeout_s: how long a store write waits for a lock held by another process.
        universe: symbols whose every pair is scanned (``A/B``, A before B), or empty.
        scan_timeframe: the universe scan's timeframe.
        scan_window: aligned bars in each scanned pair's window.
        scan_every: bars between scan times.
        vr_lag: the scan's variance ratio lag.
        hurst_max_lag: largest lag of the scan's Hurst exponent.
        scan_retention_days: days of scan rows the store keeps behind the newest scan
            (None: all).
    """

    symbols: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ("1s", "1m", "5m")
    # The pair settings' defaults are PairSettings', stated there once.
    window: WindowSpec = PairSettings.window
    price: Literal["log", "raw"] = PairSettings.price
    lag: Literal["aic", "bic"] | int = PairSettings.lag
    beta: HedgeMethod = PairSettings.beta
    kalman_delta: float = PairSettings.kalman_delta
    kalman_obs_var: float | None = PairSettings.kalman_obs_var
    rls_lambda: float = PairSettings.rls_lambda
    entry_z: float = PairSettings.entry_z
    exit_z: float = PairSettings.exit_z
    cooldown_bars: int = PairSettings.cooldown_bars
    max_pvalue: float | None = PairSettings.max_pvalue
    net_of_cost: bool = PairSettings.net_of_cost
    lateness_s: float = 2.0
    source: SourceKind = "replay"
    files: tuple[str, ...] = ()
    speed: float | None = None
    store: str | None = None
    kafka: str | None = None
    kafka_prefix: str = "pairflow."
    kafka_partitions: int = 3
    ticks_to_kafka: bool = False
    kafka_tick_form: KafkaTickForm = "batch"
    quotes: bool = False
    contract_sizes: tuple[tuple[str, float], ...] = ()
    fee_bps: tuple[tuple[str, float], ...] = tuple(DEFAULT_FEE_BPS.items())
    notional: float = DEFAULT_NOTIONAL
    pnl: bool = True
    kafka_follow: bool = True
    kafka_timeout_s: float = 120.0
    kafka_client: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)
    ingest_only: bool = False
    market: Market = "spot"
    ws_url: str | None = None
    rest_url: str | None = None
    record_dir: str | None = None
    duration_s: float | None = None
    recovery_dir: str | None = None
    store_timeout_s: float = 30.0
    snapshot_s: float = 10.0
    # The scan settings' defaults are ScanSettings', stated there once.
    universe: tuple[str, ...] = ScanSettings.universe
    scan_timeframe: str = ScanSettings.scan_timeframe
    scan_window: int = ScanSettings.scan_window
    scan_every: int = ScanSettings.scan_every
    vr_lag: int = ScanSettings.vr_lag
    hurst_max_lag: int = ScanSettings.hurst_max_lag
    scan_retention_days: float | None = 7.0

    def __post_init__(self) -> None:
        # every universe symbol gets bars: the run ingests it as one of its symbols
        extra = tuple(s for s in self.universe if s not in self.symbols)
        object.__setattr__(self, "symbols", self.symbols + extra)
        self._check_symbols()
        self._check_pairs()
        parse_timeframes(list(self.timeframes))
        self._check_windows()
        _ = self.scan_settings
        if self.scan_retention_days is not None and not self.scan_retention_days > 0:
            raise ConfigError(f"scan_retention_days must be > 0 (or unset: keep all), got "
                              f"{self.scan_retention_days}")
        self._check_run()
        self._check_trading()

    def _check_trading(self) -> None:
        try:
            object.__setattr__(self, "fee_bps", parse_fee_bps(self.fee_bps))
        except ValueError as error:
            raise ConfigError(f"fee_bps: {error}") from error
        check_notional(self.notional)

    def _check_symbols(self) -> None:
        bad = [s for s in self.symbols if not SYMBOL_PATTERN.match(s)]
        if bad:
            raise ConfigError(f"malformed symbol(s) {bad}: use upper-case names like BTCUSDT, "
                              f"on a named market like cm:BTCUSD_PERP")
        if not self.symbols:
            raise ConfigError("no symbols: pass e.g. --symbols BTCUSDT,ETHUSDT or --universe")
        if len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"symbols {list(self.symbols)} repeat a name")
        named = [split_symbol(s) for s in self.symbols]
        on_market = {(market or self.market, symbol) for market, symbol in named}
        if len(on_market) != len(self.symbols):
            raise ConfigError(f"symbols {list(self.symbols)} name one market's symbol twice "
                              f"(a bare symbol is on the run's market, {self.market})")
        if self.net_of_cost and not self.quotes:
            raise ConfigError("net-of-cost alerts weigh the quotes: add --quotes")
        if self.source == "live" and any(market for market, _ in named):
            raise ConfigError("a live run reads one market (--market): name its symbols bare")

    def _check_pairs(self) -> None:
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

    def _check_windows(self) -> None:
        if not isinstance(self.window, int):
            named = [name for name, _ in self.window]
            extra = [name for name in named if name not in self.timeframes]
            if extra:
                raise ConfigError(f"window names timeframe(s) {extra} which are not among "
                                  f"timeframes {list(self.timeframes)}")
            missing = [name for name in self.timeframes if name not in named]
            if missing:
                raise ConfigError(f"window gives no bars for timeframe(s) {missing}: name every "
                                  f"timeframe, e.g. window = 1s=300,1m=120,5m=48, or give one "
                                  f"number")
        for timeframe in self.timeframes:
            try:
                self.pair_settings(timeframe)
            except ConfigError as error:
                if isinstance(self.window, int):
                    raise
                raise ConfigError(f"timeframe {timeframe}: {error}") from error

    def _check_run(self) -> None:
        if not 0 <= self.lateness_s <= 3600:
            raise ConfigError(f"lateness must be between 0 and 3600 s, got {self.lateness_s}")
        if self.source not in get_args(SourceKind):
            raise ConfigError(f"source {self.source!r} is not replay, live or kafka")
        if self.source == "replay" and not self.files:
            raise ConfigError("a replay needs input files")
        check_market(self.market)
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"duration must be > 0 s, got {self.duration_s}")
        if (self.ticks_to_kafka or self.source == "kafka") and not self.kafka:
            raise ConfigError("ticks in Kafka need a broker: give --kafka BOOTSTRAP")
        if not self.snapshot_s >= 1 or self.snapshot_s != int(self.snapshot_s):
            raise ConfigError(f"snapshot interval must be a whole number of seconds >= 1, got "
                              f"{self.snapshot_s}")
        if self.kafka_tick_form not in get_args(KafkaTickForm):
            raise ConfigError(f"kafka_tick_form {self.kafka_tick_form!r} is not batch (a "
                              f"symbol's ticks per message) or tick (one tick per message)")
        if self.kafka_partitions < 1:
            raise ConfigError(f"kafka_partitions must be >= 1, got {self.kafka_partitions}")
        if self.ingest_only and (self.source != "live" or not self.kafka):
            raise ConfigError("ingest-only runs read the live feed and need --kafka BOOTSTRAP "
                              "(replays publish ticks with --ticks-to-kafka)")
        if self.quotes and (self.ingest_only or self.source == "kafka"):
            raise ConfigError("quotes come from recordings or the live feed in this process; "
                              "the Kafka ticks topic carries none: drop quotes")

    @property
    def kafka_client_config(self) -> dict[str, str]:
        """The ``[kafka_client]`` settings as a librdkafka configuration dictionary."""
        return dict(self.kafka_client)

    def window_for(self, timeframe: str) -> int:
        """Bars in the window of ``timeframe`` (one of ``timeframes``)."""
        return self.window if isinstance(self.window, int) else dict(self.window)[timeframe]

    def pair_settings(self, timeframe: str) -> PairSettings:
        """The statistics and alert settings of the pairs on ``timeframe`` (checked when built)."""
        return PairSettings(window=self.window_for(timeframe), price=self.price, lag=self.lag,
                            entry_z=self.entry_z, exit_z=self.exit_z,
                            cooldown_bars=self.cooldown_bars, beta=self.beta,
                            kalman_delta=self.kalman_delta, kalman_obs_var=self.kalman_obs_var,
                            rls_lambda=self.rls_lambda, max_pvalue=self.max_pvalue,
                            net_of_cost=self.net_of_cost)

    def pnl_settings(self, pair: str) -> PnlSettings:
        """The paper-trading settings of a watched pair (its legs' fees and funding)."""
        return PnlSettings.for_pair(pair, self.market, self.price, self.notional,
                                    dict(self.fee_bps))

    @property
    def scan_settings(self) -> ScanSettings:
        """The universe scan's settings (checked when built; price and lag are the pairs')."""
        return ScanSettings(universe=self.universe, scan_timeframe=self.scan_timeframe,
                            scan_window=self.scan_window, scan_every=self.scan_every,
                            vr_lag=self.vr_lag, hurst_max_lag=self.hurst_max_lag,
                            price=self.price, lag=self.lag)

    @property
    def lateness_us(self) -> int:
        """Allowed lateness in µs."""
        return round(self.lateness_s * 1_000_000)

    def contract_size(self, symbol: str) -> float | None:
        """USD per contract of a COIN-M symbol (None on spot and USDⓈ-M)."""
        return contract_size(symbol, dict(self.contract_sizes))

    def legs(self, pair: str) -> tuple[str, str]:
        """The (Y, X) symbols of a pair."""
        y, x = pair.split("/")
        return y, x


def check_market(market: str) -> None:
    """The one check of a market name.

    Raises:
        ConfigError: when ``market`` is not one pairflow reads.
    """
    if market not in MARKETS:
        raise ConfigError(f"market {market!r} is not {' or '.join(MARKETS)}")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("use true or false")


def _parser_for(annotation: Any) -> Callable[[Any], Any]:
    """How a text or TOML value becomes a field's type (``X | None`` parses as ``X``)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _parser_for(members[0])
        return str
    if annotation is bool:
        return _parse_bool
    if annotation in (int, float):
        return annotation
    if get_origin(annotation) is tuple:
        return _split
    return str


def load_settings(
    cls: type[T],
    *,
    env_prefix: str,
    env: Mapping[str, str] | None = None,
    table: Mapping[str, Any] | None = None,
    given: Mapping[str, Any] | None = None,
    parsers: Mapping[str, Callable[[Any], Any]] | None = None,
    where: str = "",
) -> T:
    """Build a settings dataclass: ``given`` over ``<env_prefix><NAME>`` variables over ``table``.

    The one way pairflow reads settings: each value is converted to its field's type (or by
    ``parsers[name]``), then the dataclass checks the whole.

    Args:
        cls: a dataclass whose fields are the setting names.
        env_prefix: prefix of the environment variables (``PAIRFLOW_``, ``PAIRFLOW_LIVE_``).
        env: the environment (default ``os.environ``).
        table: values from a TOML file (``where`` names it in errors).
        given: values given directly, e.g. on the command line (None: not given).
        parsers: per-field conversions that override the type's.
        where: the TOML file's name, for errors about its keys.

    Raises:
        ConfigError: on an unknown key or setting, or a value of the wrong type.
    """
    env = os.environ if env is None else env
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    convert = {name: (parsers or {}).get(name) or _parser_for(hints[name]) for name in names}

    def coerce(name: str, value: Any, spelled: str) -> Any:
        try:
            return None if value is None else convert[name](value)
        except (TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"{spelled} = {value!r} is not a valid value: {error}") from error

    values: dict[str, Any] = {}
    unknown = sorted(set(table or {}) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(names)}")
    values.update({k: coerce(k, v, k) for k, v in (table or {}).items()})
    for name in names:
        variable = f"{env_prefix}{name.upper()}"
        text = env.get(variable)
        if text is not None and text != "":
            values[name] = coerce(name, text, f"{name} ({variable})")
    for name, value in (given or {}).items():
        if name not in names:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = coerce(name, value, name)
    return cls(**values)


#: A market qualifier after upper-casing a name (``CM:BTCUSD_PERP``, ``BTCUSDT/CM:…``).
_MARKET_PREFIX = re.compile(r"(^|/)(SPOT|USDM|CM):")


def upper_names(value: Any) -> tuple[str, ...]:
    """Symbols or pairs upper-cased, their market qualifiers lower-cased (``cm:BTCUSD_PERP``)."""
    return tuple(_MARKET_PREFIX.sub(lambda m: f"{m.group(1)}{m.group(2).lower()}:", item.upper())
                 for item in _split(value))


def _timeframes(value: Any) -> tuple[str, ...]:
    items = _split(value)
    return parse_timeframes(list(items)) if items else ()


#: Conversions of the fields whose text form is more than their type.
_CONFIG_PARSERS: dict[str, Callable[[Any], Any]] = {
    "symbols": upper_names, "pairs": upper_names, "universe": upper_names,
    "timeframes": _timeframes,
    "lag": parse_lag, "speed": parse_speed, "window": parse_window,
    "kafka_client": parse_kafka_client, "contract_sizes": parse_contract_sizes,
    "fee_bps": parse_fee_bps,
}


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
    toml_path = toml_path or env.get("PAIRFLOW_CONFIG")
    table = read_toml(toml_path) if toml_path else {}
    from_env = kafka_client_from_env(env)
    from_toml = table.get("kafka_client", {})
    if from_env and isinstance(from_toml, Mapping):  # variables override the table's settings
        table = {**table, "kafka_client": {**flat_table(from_toml), **from_env}}
    return load_settings(PairflowConfig, env_prefix="PAIRFLOW_", env=env, table=table,
                         given=cli, parsers=_CONFIG_PARSERS, where=str(toml_path))
