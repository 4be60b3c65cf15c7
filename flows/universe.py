"""The universe scan step of the dataflow: every pair of the universe, scanned per bar end.

::

    Bar (universe symbols, scan timeframe) ─► (symbol, end, close) ─► universe|tf ─► ScanRecord
    ScanRecord of a q-gated watched pair ─► (Y/X|tf, (Y/X, tf, None, record)) ─► the pair step

A scan needs every symbol's close at each bar end in one place, so the step is keyed by one
key (``universe|<scan timeframe>``): the whole universe runs on one worker, whatever the
number of workers (the other steps spread by symbol and pair as before). The pure logic is
:class:`~pairflow.universe.gather.UniverseGather` (when an end is complete) and
:class:`~pairflow.universe.UniverseScan` (the statistics).

With ``max_pvalue`` set, a watched pair whose two legs are universe symbols is gated by its
universe q-value instead of its own p-value (:func:`qvalue_gated`): each scan record of that
pair goes to the pair's step on every watched timeframe, where the alert decisions wait for it
(:class:`pairflow.pairs.PairState`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from pairflow.config import PairflowConfig
from pairflow.errors import ConfigError
from pairflow.records import Bar, ScanRecord

if TYPE_CHECKING:
    from pairflow.universe.gather import UniverseGather


class _ScanLogic(StatefulBatchLogic):
    """Thin adapter: the universe's :class:`UniverseGather`, flushed at the end of the input.

    The gather (and with it the numba kernel) is made on the first bar: a run whose universe
    never sends a bar does not pay the start-up.
    """

    def __init__(self, gather: UniverseGather | None, config: PairflowConfig):
        self.gather = gather
        self.config = config

    def on_batch(self, values: list[tuple[str, int, float]]) -> tuple[list, bool]:
        if self.gather is None:
            from pairflow.universe.gather import UniverseGather

            self.gather = UniverseGather(self.config.universe, self.config.scan_settings)
        return self.gather.add(values), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        records = [] if self.gather is None else self.gather.finish()
        return records, StatefulBatchLogic.RETAIN

    def snapshot(self) -> UniverseGather | None:
        return copy.deepcopy(self.gather)


def check_universe(config: PairflowConfig) -> None:
    """Fail at start-up when the universe's bars would not be made.

    Raises:
        ConfigError: the scan timeframe is not among the run's timeframes.
    """
    if config.universe and config.scan_timeframe not in config.timeframes:
        raise ConfigError(f"the universe is scanned on {config.scan_timeframe} bars: add "
                          f"{config.scan_timeframe} to --timeframes "
                          f"{','.join(config.timeframes)} or set --scan-timeframe")


def scan_retention_s(config: PairflowConfig) -> float | None:
    """Seconds of scan rows the store keeps behind the newest scan (None: all)."""
    days = config.scan_retention_days
    return None if days is None else days * 86_400


def universe_scans(config: PairflowConfig, bars: Stream[Bar]) -> Stream[ScanRecord] | None:
    """The scan records of the universe from the run's bars (None: no universe configured).

    Raises:
        ConfigError: the scan timeframe is not among the run's timeframes.
    """
    if not config.universe:
        return None
    check_universe(config)
    timeframe = config.scan_timeframe
    members = frozenset(config.universe)
    closes = op.filter_map("universe_bars", bars, lambda bar: (
        (bar.symbol, bar.end, bar.close)
        if bar.timeframe == timeframe and bar.symbol in members else None))
    keyed = op.key_on("universe_key", closes, lambda _: f"universe|{timeframe}")
    return op.key_rm("universe_out", op.stateful_batch(
        "universe", keyed, lambda state: _ScanLogic(state, config)))


def qvalue_gated(config: PairflowConfig) -> dict[str, list[str]]:
    """The watched pairs whose entries the universe q-value gates, by their scan pair ``A/B``.

    They are the pairs with both legs in the universe, when ``max_pvalue`` is set; a watched
    ``B/A`` is scanned as ``A/B`` (A before B in the universe).
    """
    if config.max_pvalue is None or not config.universe:
        return {}
    order = {symbol: i for i, symbol in enumerate(config.universe)}
    gated: dict[str, list[str]] = {}
    for pair in config.pairs:
        legs = config.legs(pair)
        if all(leg in order for leg in legs):
            first, second = sorted(legs, key=order.__getitem__)
            gated.setdefault(f"{first}/{second}", []).append(pair)
    return gated


def scans_to_pairs(config: PairflowConfig, scans: Stream[ScanRecord] | None
                   ) -> Stream[tuple[str, tuple[str, str, None, ScanRecord]]] | None:
    """Each scan record of a q-gated watched pair, keyed to that pair's step per timeframe.

    None when no pair is gated by the universe.
    """
    gated = qvalue_gated(config)
    if scans is None or not gated:
        return None

    def route(record: ScanRecord) -> list[tuple[str, tuple[str, str, None, ScanRecord]]]:
        return [(f"{pair}|{timeframe}", (pair, timeframe, None, record))
                for pair in gated.get(record.pair, ()) for timeframe in config.timeframes]

    return op.flat_map("scans_to_pairs", scans, route)
