"""The pairflow dataflow: ticks → bars → pair statistics → alerts → store / Kafka.

Run it with ``python -m bytewax.run flows.pairs:flow`` (configured by ``PAIRFLOW_*``
variables or the TOML file named by ``PAIRFLOW_CONFIG``), or through ``pairflow replay`` /
``pairflow live``, which build the same flow with :func:`build_flow`.

::

    source ── TickChunk | Heartbeat | FeedGap ─► bars (per symbol) ─► Bar ─► fan_out ─►
             ├ Bar (candles read as bars) ─────────────────────────► Bar ─┘      │
             └ DeadLetter, Count                   └ late → DeadLetter         │
                                                  pairs (per Y/X|tf): PairStats, Alert,
                                                  SpreadCost, RoundTrip, PnlSummary
                                                  universe (one key): ScanRecord ─┘ (q-gate)
    Bar, PairStats, Alert, DeadLetter, ScanRecord ─► store (SQLite) and/or Kafka;  Count ─► tally
"""

from __future__ import annotations

import copy
import signal
from collections import Counter
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from connectors.metrics import CountSink, CountTally
from connectors.store import StoreSink
from flows.sources import source_of
from flows.universe import qvalue_gated, scan_retention_s, scans_to_pairs, universe_scans
from pairflow.bars import BarBuilder
from pairflow.config import PairflowConfig, load_config
from pairflow.errors import ConfigError, InputFileError
from pairflow.metrics import Count, counts
from pairflow.records import Bar, DeadLetter, Health, QuoteBar, ScanRecord, to_json
from pairflow.ticks import FeedGap, Heartbeat

if TYPE_CHECKING:
    from pairflow.pairs import PairState


_TIMEFRAME = attrgetter("timeframe")


class _BarLogic(StatefulBatchLogic):
    """Thin adapter: one :class:`BarBuilder` per symbol.

    The builder is made on the symbol's first item: a stateful step's builder is not told
    the key.
    """

    def __init__(self, builder: BarBuilder | None, config: PairflowConfig):
        self.builder = builder
        self.config = config

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        tally: Counter = Counter()
        if self.builder is None:
            symbol = values[0].symbol
            self.builder = BarBuilder(symbol, self.config.timeframes, self.config.lateness_us,
                                      self.config.contract_size(symbol))
        for item in values:
            if isinstance(item, FeedGap):
                self.builder.gap(item)
                tally["feed_gaps"] += 1
                continue
            step = (self.builder.heartbeat(item) if isinstance(item, Heartbeat)
                    else self.builder.update(item))
            out.extend(step.bars)
            for timeframe, made in Counter(map(_TIMEFRAME, step.bars)).items():
                tally[f"bars:{timeframe}"] += made
            tally["duplicates"] += step.duplicates
            if step.late is not None:
                for tick, late_by in zip(step.late.ticks(), step.late_by_us.tolist(),
                                         strict=True):
                    raw = to_json(tick).decode()[:-1] + f',"late_by_us":{late_by}}}'
                    out.append(DeadLetter("bars", "late", raw, tick.recv_ts))
        out.extend(counts(tally))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> BarBuilder:
        return copy.deepcopy(self.builder)


#: What the pair step takes: (pair, timeframe, leg 0/1, bar or quote bar) or, for a pair
#: gated by the universe, (pair, timeframe, None, scan record).
PairInput = tuple[str, str, int | None, Bar | QuoteBar | ScanRecord]


def _pair_step(config: PairflowConfig) -> Callable:
    settings = {timeframe: config.pair_settings(timeframe) for timeframe in config.timeframes}
    gated = {pair for pairs in qvalue_gated(config).values() for pair in pairs}
    scan_every_us = config.scan_settings.every_us

    def step(state: PairState | None, value: PairInput) -> tuple[PairState, list]:
        pair, timeframe, leg, item = value
        if state is None:
            # Imported on a pair's first item: the statistics (numba kernels, scipy) are
            # start-up a run without pairs does not pay.
            from pairflow.pairs import PairState

            own = settings[timeframe]
            state = PairState(pair, timeframe, own.estimator, own.alert_state(),
                              config.market, config.quotes, dict(config.fee_bps),
                              config.pnl_settings(pair) if config.pnl else None,
                              scan_every_us if pair in gated else None)
        if leg is None:
            return state, state.scanned(item)
        return state, state.update(leg, item)

    return step


def _fan_out(config: PairflowConfig) -> Callable[[Bar | QuoteBar], list[tuple[str, PairInput]]]:
    legs_of: dict[str, list[tuple[str, int]]] = {}
    for pair in config.pairs:
        for leg, symbol in enumerate(config.legs(pair)):
            legs_of.setdefault(symbol, []).append((pair, leg))

    def fan_out(bar: Bar | QuoteBar) -> list[tuple[str, PairInput]]:
        return [(f"{pair}|{bar.timeframe}", (pair, bar.timeframe, leg, bar))
                for pair, leg in legs_of.get(bar.symbol, ())]

    return fan_out


def _dead_count(letter: DeadLetter) -> Count:
    return Count(f"dead:{letter.reason.partition(':')[0]}", 1)


def build_flow(
    config: PairflowConfig,
    tally: CountTally | None = None,
    on_progress: Callable[[float, float], None] | None = None,
    on_input_error: Callable[[InputFileError], None] | None = None,
) -> Dataflow:
    """The dataflow for ``config``.

    Args:
        config: what to read, compute and write.
        tally: in-process totals of the run's counters (frames, ticks, bars, dead letters …);
            without one each worker logs its totals at the end.
        on_progress: replay progress callback ``(done, total)``.
        on_input_error: called with each replayed file that could not be read to its end,
            after everything else was emitted (else the replay raises the first).

    Raises:
        ConfigError: when no sink is configured.
    """
    if config.ingest_only:
        from flows.ingest import build_ingest_flow

        return build_ingest_flow(config, tally)
    if not (config.store or config.kafka):
        raise ConfigError("nowhere to write: give --store PATH and/or --kafka BOOTSTRAP")
    if config.source == "live":
        from connectors.binance.exchange_info import with_exchange_contract_sizes

        config = with_exchange_contract_sizes(config)
    flow = Dataflow("pairflow")
    source = op.input("source", flow, source_of(config, on_progress, on_input_error))
    # TickChunk | Heartbeat | FeedGap | DeadLetter | Health | Count
    is_count = op.branch("split_counts", source, lambda item: isinstance(item, Count))
    is_dead = op.branch("split_dead", is_count.falses, lambda i: isinstance(i, DeadLetter))
    is_health = op.branch("split_health", is_dead.falses, lambda i: isinstance(i, Health))
    is_candle = op.branch("split_candles", is_health.falses, lambda i: isinstance(i, Bar))
    trade_items, quote_bars, quote_counts = is_candle.falses, [], []
    if config.quotes:
        from flows.quotes import split_quotes

        trade_items, *quote_streams = split_quotes(config, trade_items)
        quote_bars, quote_counts = [quote_streams[0]], [quote_streams[1]]
    feed = op.key_on("by_symbol", trade_items, lambda item: item.symbol)
    # (symbol, TickChunk | Heartbeat | FeedGap)
    bar_out = op.key_rm("bars_out", op.stateful_batch(
        "bars", feed, lambda state: _BarLogic(state, config)))
    # Bar | DeadLetter(late) | Count
    bar_counts = op.branch("split_bar_counts", bar_out, lambda item: isinstance(item, Count))
    bars_or_late = op.branch("split_late", bar_counts.falses, lambda i: isinstance(i, Bar))
    bars = op.merge("all_bars", bars_or_late.trues, is_candle.trues)
    # Bar
    scans = universe_scans(config, bars)
    # ScanRecord, or None without a universe
    pair_streams = []  # no pairs, no pair steps: a replay of bars alone pays nothing per bar here
    if config.pairs:
        legs = op.flat_map("fan_out", op.merge("quoted_bars", bars, *quote_bars) if quote_bars
                           else bars, _fan_out(config))
        gate_scans = scans_to_pairs(config, scans)
        if gate_scans is not None:
            legs = op.merge("legs_and_scans", legs, gate_scans)
        # ("Y/X|tf", PairInput)
        pair_streams = [op.key_rm("pairs_out", op.stateful_flat_map("pairs", legs,
                                                                _pair_step(config)))]
    # PairStats | Alert | SpreadCost | RoundTrip | PnlSummary
    dead = op.merge("dead", is_dead.trues, bars_or_late.falses)
    records = op.merge("records", bars, *pair_streams, dead, is_health.trues,
                       *([scans] if scans else []), *quote_bars)
    # Bar | PairStats | Alert | SpreadCost | RoundTrip | PnlSummary | DeadLetter | Health
    # | ScanRecord | QuoteBar
    all_counts = op.merge("counts", is_count.trues, bar_counts.trues,
                          op.map("count_dead", dead, _dead_count),
                          *(op.map("count_pairs", out, lambda r: Count(f"{r.kind}s", 1))
                            for out in pair_streams),
                          *([op.map("count_scans", scans, lambda _: Count("scans", 1))]
                            if scans else []), *quote_counts)
    op.output("tally", all_counts, CountSink(tally))
    if config.store:
        op.output("store", records, StoreSink(config.store, config.store_timeout_s,
                                              scan_retention_s=scan_retention_s(config)))
    if config.kafka:
        from connectors.kafka import KafkaRecordSink, KafkaTickSink

        op.output("kafka", records, KafkaRecordSink(
            config.kafka, config.kafka_prefix, partitions=config.kafka_partitions,
            extra_config=config.kafka_client_config, delivery_timeout_s=config.kafka_timeout_s))
        if config.ticks_to_kafka:
            # Ticks with their heartbeats and feed gaps: a Kafka-fed worker closes and refuses
            # windows exactly as this flow does.
            op.output("kafka_ticks", is_candle.falses, KafkaTickSink(
                config.kafka, config.kafka_prefix, partitions=config.kafka_partitions,
                extra_config=config.kafka_client_config,
                delivery_timeout_s=config.kafka_timeout_s, form=config.kafka_tick_form))
    return flow


def __getattr__(name: str) -> Dataflow:
    # ``python -m bytewax.run flows.pairs:flow`` reads ``flow``; it is built on first access
    # from PAIRFLOW_* variables / PAIRFLOW_CONFIG, so importing this module needs no config.
    if name == "flow":
        # That path has no pairflow CLI: this hook is its application entry, so it owns SIGTERM
        # as the CLI does for its commands. SIGTERM becomes KeyboardInterrupt, which Bytewax
        # ends cleanly; the Kafka producers then flush at interpreter exit.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        return build_flow(load_config())
    raise AttributeError(name)
