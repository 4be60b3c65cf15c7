"""Record types and their JSON form.

Times are integer microseconds since the Unix epoch, UTC. Prices and sizes are floats
(Binance sends decimal strings; they are parsed once, at the edge). Every record serialises
to one JSON object carrying its kind's schema version ``"v"`` (:func:`schema_version`: 1, the
pair record 2, the alert record 3); field names are the contract shared with Kafka
consumers, the SQLite store and the CSV export (see ``docs/architecture.md``).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np

from pairflow.analytics.result import PairResult
from pairflow.book_records import QuoteBar, SpreadCost
from pairflow.pnl_records import PnlSummary, RoundTrip
from pairflow.slots import init_through_slots as _init_through_slots

SCHEMA_VERSION = 1
#: Record kinds whose contract changed since version 1: ``pair`` 2 added the hedge ratios
#: ``beta_ols``, ``beta_kalman``, ``beta_rls``, ``beta_se`` and the estimator's ``hedge``.
#: ``alert`` 2 added the executable prices ``y_price``, ``x_price`` and the net ``edge``.
#: ``alert`` 3 added ``qvalue``, the universe q-value that gated an entry.
#: ``quote`` 2 added the perpetual's ``mark_price``, ``funding_rate`` and ``next_funding_ts``.
SCHEMA_VERSIONS: dict[str, int] = {"pair": 2, "alert": 3, "quote": 2}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TickSource = Literal["live", "replay", "backfill"]
AlertKind = Literal["enter_upper", "enter_lower", "exit"]


#: An exchange symbol: upper-case letters and digits, as Binance spells them (``BTCUSDT``),
#: with a contract suffix on futures (``BTCUSD_PERP``, ``BTCUSDT_240927``).
SYMBOL_TEXT = "[A-Z0-9]{2,20}(?:_[A-Z0-9]{1,12})?"
EXCHANGE_SYMBOL_PATTERN = re.compile(f"^{SYMBOL_TEXT}$")
#: The Binance markets a symbol may name: spot, USDⓈ-M futures, COIN-M futures.
MARKET_NAMES = ("spot", "usdm", "cm")
#: A symbol as pairflow names it: an exchange symbol, optionally on a named market
#: (``cm:BTCUSD_PERP``); a bare one is on the run's market.
SYMBOL_PATTERN = re.compile(f"^(?:(?:{'|'.join(MARKET_NAMES)}):)?{SYMBOL_TEXT}$")
_COINM_SYMBOL = re.compile("^[A-Z0-9]+USD_[A-Z0-9]+$")


def is_coinm(symbol: str) -> bool:
    """Whether an exchange symbol is a COIN-M contract: a USD pair with a contract suffix.

    >>> is_coinm("BTCUSD_PERP"), is_coinm("ETHUSD_240927"), is_coinm("BTCUSDT_240927")
    (True, True, False)
    """
    return bool(_COINM_SYMBOL.match(symbol))


def split_symbol(name: str) -> tuple[str | None, str]:
    """(market or None when bare, exchange symbol) of a symbol name.

    >>> split_symbol("cm:BTCUSD_PERP"), split_symbol("BTCUSDT")
    (('cm', 'BTCUSD_PERP'), (None, 'BTCUSDT'))
    """
    market, _, symbol = name.rpartition(":")
    return market or None, symbol


def is_perpetual(symbol: str, run_market: str) -> bool:
    """Whether a leg is a perpetual future (pays funding): USDⓈ-M or COIN-M, no delivery date.

    >>> [is_perpetual(s, "spot") for s in ("BTCUSDT", "cm:BTCUSD_PERP", "cm:ETHUSD_240927")]
    [False, True, False]
    >>> is_perpetual("BTCUSDT", "usdm")
    True
    """
    market, name = split_symbol(symbol)
    suffix = name.partition("_")[2]
    return (market or run_market) in ("usdm", "cm") and suffix in ("", "PERP")


def frame_market(futures: bool, symbol: str) -> str:
    """The market a frame came from: spot unless it is a futures frame.

    COIN-M futures are those whose symbol is a USD pair with a contract suffix
    (``BTCUSD_PERP``, ``ETHUSD_240927``); USDⓈ-M ones are USDT/USDC pairs.

    >>> [frame_market(False, "BTCUSDT"), frame_market(True, "BTCUSDT"),
    ...  frame_market(True, "BTCUSD_PERP")]
    ['spot', 'usdm', 'cm']
    """
    if not futures:
        return "spot"
    return "cm" if is_coinm(symbol) else "usdm"

#: Microseconds since the epoch exceed this after 1973; milliseconds will not before the
#: year 5138, so one threshold tells the two units apart.
_MICROS_FLOOR = 100_000_000_000_000


def exchange_time_us(value: Any) -> Any:
    """A Binance time in µs, from ms or µs told apart by magnitude (an int or an int64 array).

    Binance sends ms by default and µs on ``timeUnit=MICROSECOND`` streams and in
    data.binance.vision spot dumps from 2025.

    >>> exchange_time_us(1723161255342), exchange_time_us(1723161255342123)
    (1723161255342000, 1723161255342123)
    """
    if isinstance(value, np.ndarray):
        return np.where(value >= _MICROS_FLOOR, value, value * 1000)
    return value if value >= _MICROS_FLOOR else value * 1000


def ms_to_us(ms: int) -> int:
    """Convert Binance millisecond timestamps to microseconds."""
    return ms * 1000


def ns_to_us(ns: int) -> int:
    """Convert recorder nanosecond timestamps to microseconds (floor)."""
    return ns // 1000


def us_to_utc(ts_us: int) -> datetime:
    """Convert microseconds since the epoch to an aware UTC datetime, exactly."""
    return EPOCH + timedelta(microseconds=ts_us)


def us_to_iso(ts_us: int) -> str:
    """Format microseconds since the epoch as ISO-8601 UTC with microseconds."""
    return us_to_utc(ts_us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_to_us(text: str) -> int:
    """Parse an ISO-8601 time (naive means UTC) into microseconds since the epoch.

    Raises:
        ValueError: when ``text`` is not an ISO-8601 date or time.
    """
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class Tick:
    """One exchange trade (or aggregate trade) as pairflow sees it.

    ``trade_id`` is Binance's ``t`` for trades and ``a`` for aggregate trades;
    ``first_trade_id``/``last_trade_id`` are the exchange trade ids it covers (``f``/``l`` of an
    aggregate trade, both equal to ``t`` for a plain trade), so bars count exchange trades.
    """

    kind: ClassVar[str] = "tick"
    symbol: str
    trade_id: int
    price: float
    qty: float
    ts: int
    recv_ts: int
    buyer_is_maker: bool
    source: TickSource
    first_trade_id: int
    last_trade_id: int

    @property
    def key(self) -> str:
        """Kafka key: the symbol."""
        return self.symbol


@_init_through_slots
@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV bar of one symbol over ``[start, end)``; its timestamp is ``end``.

    A window in which the symbol traded nothing while the feed was healthy has
    ``trades == 0``, OHLC equal to the previous close and zero volumes; a window inside a
    feed gap is not a bar at all.
    """

    kind: ClassVar[str] = "bar"
    symbol: str
    timeframe: str
    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None  # None: a candle of a layout without it (generic OHLCV)
    vwap: float | None
    trades: int | None  # None: a candle of a layout without it (generic OHLCV)
    taker_buy_volume: float | None  # None: a candle of a layout without it (generic OHLCV)
    first_trade_id: int | None
    last_trade_id: int | None

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``SYMBOL|timeframe``."""
        return f"{self.symbol}|{self.timeframe}"

    @property
    def taker_imbalance(self) -> float | None:
        """Taker flow: (taker-buy − taker-sell volume) / volume; None without trades or sides.

        >>> Bar("X", "1s", 0, 1, 1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 1.0, 2, 3.0, 1, 2).taker_imbalance
        0.5
        """
        if not self.volume or self.taker_buy_volume is None:
            return None
        return (2.0 * self.taker_buy_volume - self.volume) / self.volume


class _PairRecord:
    """What the pair record adds to its fields (declared by :data:`PairStats`)."""

    __slots__ = ()
    kind: ClassVar[str] = "pair"

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``Y/X|timeframe``."""
        return f"{self.pair}|{self.timeframe}"  # type: ignore[attr-defined]

    @classmethod
    def of(
        cls, result: PairResult, *, pair: str, timeframe: str, ts: int, window: int, price: str,
        lag: str, hedge: str,
    ) -> PairStats:
        """The record of an estimator's result for pair ``pair`` at bar end ``ts``."""
        values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        return cls(pair=pair, timeframe=timeframe, ts=ts, window=window, price=price, lag=lag,
                   hedge=hedge, **values)


#: The record's own fields, each group placed before the :class:`PairResult` field named.
_PAIR_CONTEXT = {
    "y": (("pair", "str"), ("timeframe", "str"), ("ts", "int")),
    "n": (("window", "int"),),
    "reason": (("price", "str"), ("lag", "str"), ("hedge", "str")),
}

PairStats = dataclasses.make_dataclass(
    "PairStats",
    [
        field
        for result_field in dataclasses.fields(PairResult)
        for field in (*_PAIR_CONTEXT.get(result_field.name, ()),
                      (result_field.name, result_field.type))
    ],
    bases=(_PairRecord,),
    frozen=True,
    slots=True,
    namespace={
        "__module__": __name__,
        "__doc__": """Statistics of pair ``Y/X`` at bar end ``ts``, using data up to ``ts`` only.

    Fields: ``pair``, ``timeframe``, ``ts``, then the estimator's
    :class:`~pairflow.analytics.PairResult` (``y``, ``x``, ``n``, the statistics ``beta`` to
    ``half_life``, the hedge ratios ``beta_ols`` … ``beta_se``, ``reason``) with the settings
    ``window`` before ``n`` and ``price``, ``lag``, ``hedge`` (the hedge-ratio estimator and
    its settings, ``EstimatorSettings.hedge_label``) before ``reason``
    (``schemas/pair.schema.json``). The statistics are declared
    once, by ``PairResult``.

    Undefined statistics are ``None`` and ``reason`` says why; when a leg has no bar at
    ``ts`` (feed gap, or not started yet) its transformed close ``y`` or ``x`` is ``None`` too.
    """,
    },
)


@dataclass(frozen=True, slots=True)
class Alert:
    """A z-score threshold crossing of one pair; ``alert_id`` makes replays idempotent."""

    kind: ClassVar[str] = "alert"
    alert_id: str
    pair: str
    timeframe: str
    ts: int
    alert_kind: AlertKind
    zscore: float
    threshold: float
    spread: float
    beta: float
    #: The executable prices of the trade the alert calls for (entry: sell Y at its bid on
    #: ``enter_upper``…; exit: the reverse) and, on an entry, the expected reversion to the
    #: exit threshold net of the round-trip cost, in spread units; null when the alert was
    #: not weighed against the quotes (cost-aware alerts off).
    y_price: float | None = None
    x_price: float | None = None
    edge: float | None = None
    #: On an entry of a pair gated by the universe scan (``max_pvalue`` with both legs in the
    #: universe): the pair's q-value in force at ``ts``, below ``max_pvalue``; null when the
    #: pair's own p-value gated the entry, when no gate is set, and on exits.
    qvalue: float | None = None

    @property
    def key(self) -> str:
        """Kafka key: the pair ``Y/X``."""
        return self.pair


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not be used: where (``stage``), why (``reason``) and the raw text.

    ``origin`` says where the input came from — ``path:line`` of a file, ``topic/partition@
    offset`` of a Kafka message — so identical bad lines at different places stay distinct
    while the same line read twice stays one; ``""`` where no position exists.
    """

    kind: ClassVar[str] = "deadletter"
    stage: str
    reason: str
    raw: str
    ts: int
    origin: str = ""

    @property
    def key(self) -> str:
        """Kafka key: the stage that rejected the input."""
        return self.stage


@dataclass(frozen=True, slots=True)
class Health:
    """Health of one live stream at ``ts`` (µs), published every few seconds.

    ``latency_*_ms`` are exchange trade time → local receive time over the last interval;
    ``clock_skew_ms`` estimates how far the local clock is behind (+) the exchange's.
    """

    kind: ClassVar[str] = "health"
    stream: str
    symbol: str
    ts: int
    connected: bool
    last_message_age_s: float | None
    messages_per_s: float
    reconnects: int
    gaps_found: int
    trades_backfilled: int
    gaps_unrecovered: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    clock_skew_ms: float | None
    event: str | None

    @property
    def key(self) -> str:
        """Kafka key: the stream name."""
        return self.stream


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """Statistics of pair ``A/B`` of a universe scan at scan time ``ts`` (bar end, µs).

    A regressed on B over the pair's last ``window`` aligned bars (both legs have a bar) at
    or before ``ts``; ``as_of`` is the end of the latest of them (``None``: the legs never
    had a bar at the same end). Statistics are ``None`` when undefined, and ``reason`` says
    why (``"n < window"`` before ``window`` aligned bars). Definitions: ``docs/statistics.md``.
    """

    kind: ClassVar[str] = "scan"
    pair: str
    timeframe: str
    ts: int
    as_of: int | None
    window: int
    n: int
    beta: float | None
    zscore: float | None
    corr: float | None
    half_life: float | None
    eg_stat: float | None
    eg_pvalue_yx: float | None
    eg_pvalue_xy: float | None
    eg_pvalue: float | None
    eg_qvalue: float | None
    variance_ratio: float | None
    hurst: float | None
    reason: str | None

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``A/B|timeframe``."""
        return f"{self.pair}|{self.timeframe}"


Record = (Tick | Bar | QuoteBar | SpreadCost | PairStats | Alert | RoundTrip | PnlSummary
          | DeadLetter | Health | ScanRecord)
RECORD_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (Tick, Bar, QuoteBar, SpreadCost, PairStats, Alert, RoundTrip,
                              PnlSummary, DeadLetter, Health, ScanRecord)
}
#: The JSON name of ``Alert.alert_kind`` is ``kind`` (DESIGN.md); Python reserves ``kind``
#: on every record class for the record type.
_JSON_RENAMES: dict[type, dict[str, str]] = {Alert: {"alert_kind": "kind"}}


def field_names(cls: type) -> list[str]:
    """The JSON / CSV field names of a record class, in contract order."""
    renames = _JSON_RENAMES.get(cls, {})
    return [renames.get(f.name, f.name) for f in dataclasses.fields(cls)]


@functools.cache
def _json_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """``(JSON name, attribute)`` of each field of a record class, in contract order."""
    renames = _JSON_RENAMES.get(cls, {})
    return tuple((renames.get(f.name, f.name), f.name) for f in dataclasses.fields(cls))


def to_dict(record: Record) -> dict[str, Any]:
    """The record's JSON object (without the ``"v"`` version field)."""
    return {name: getattr(record, attr) for name, attr in _json_fields(type(record))}


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a record of class ``cls`` from its JSON object (``"v"`` is ignored)."""
    renames = {v: k for k, v in _JSON_RENAMES.get(cls, {}).items()}
    return cls(**{renames.get(k, k): v for k, v in data.items() if k != "v"})


_encoder = msgspec.json.Encoder()


def schema_version(kind: str) -> int:
    """The schema version ``"v"`` records of ``kind`` carry.

    >>> schema_version("tick"), schema_version("pair")
    (1, 2)
    """
    return SCHEMA_VERSIONS.get(kind, SCHEMA_VERSION)


def to_json(record: Record) -> bytes:
    """Serialise a record to its wire form: one JSON object with its ``"v"`` first."""
    return _encoder.encode({"v": schema_version(record.kind), **to_dict(record)})


def from_json(cls: type, payload: bytes | str) -> Any:
    """Parse a record of class ``cls`` from its wire form."""
    return from_dict(cls, msgspec.json.decode(payload))


#: Fields holding µs timestamps; CSV writes them as ISO-8601 UTC with microseconds.
TIME_FIELDS = frozenset({"start", "end", "ts", "recv_ts", "as_of", "entry_ts", "exit_ts",
                         "open_since"})


def write_csv(handle: Any, cls: type, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows of record class ``cls`` as CSV with a header of its field names.

    Cells: empty for null, ISO-8601 UTC for times, floats to the last digit (``repr``).
    """
    columns = field_names(cls)
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(_csv_cell(column, row.get(column)) for column in columns)


def _csv_cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in TIME_FIELDS and isinstance(value, int):
        return us_to_iso(value)
    if isinstance(value, float):
        return repr(value)
    return value
