"""The quote branch of the pairflow dataflow: quote chunks → quote bars (per symbol).

Built into :func:`flows.pairs.build_flow` only when quotes are asked for (``quotes``), so a
run without them has the same dataflow as before.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from pairflow.config import PairflowConfig
from pairflow.metrics import Count, counts
from pairflow.quotes import MarkChunk, QuoteBarBuilder, QuoteChunk, QuoteGap
from pairflow.ticks import Heartbeat

#: What the quote step takes besides the final heartbeats.
_QUOTE_ITEMS = (QuoteChunk, MarkChunk, QuoteGap)


class _QuoteLogic(StatefulBatchLogic):
    """Thin adapter: one :class:`QuoteBarBuilder` per symbol, flushed by the final heartbeat."""

    def __init__(self, builder: QuoteBarBuilder | None, config: PairflowConfig):
        self.builder = builder
        self.config = config

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        if self.builder is None:
            self.builder = QuoteBarBuilder(values[0].symbol, self.config.timeframes,
                                           self.config.lateness_us)
        out: list[Any] = []
        tally: Counter = Counter()
        for item in values:
            if isinstance(item, Heartbeat):
                step = self.builder.flush()
            elif isinstance(item, MarkChunk):
                step = self.builder.mark(item)
            elif isinstance(item, QuoteGap):
                step = self.builder.gap(item)
                tally["quote_gaps"] += 1
            else:
                step = self.builder.update(item)
            out.extend(step.bars)
            tally["quotes_late"] += step.late
            tally["quote_windows_in_gaps"] += step.in_gaps
        tally.update(f"quote_bars:{bar.timeframe}" for bar in out)
        out.extend(counts(tally))
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> QuoteBarBuilder:
        return copy.deepcopy(self.builder)


def split_quotes(config: PairflowConfig, items: Stream) -> tuple[Stream, Stream, Stream]:
    """Take the quote chunks, mark prices and quote gaps out of ``items`` into quote bars.

    Returns:
        (the other items, the :class:`~pairflow.records.QuoteBar` s, their counts).
    """
    is_quote = op.branch("split_quotes", items, lambda item: isinstance(item, _QUOTE_ITEMS))
    # The final heartbeat of a replay closes each symbol's last quote windows too.
    ends = op.filter("quote_ends", is_quote.falses,
                     lambda item: isinstance(item, Heartbeat) and item.final)
    feed = op.key_on("quotes_by_symbol", op.merge("quote_feed", is_quote.trues, ends),
                     lambda item: item.symbol)
    out = op.key_rm("quotes_out", op.stateful_batch(
        "quotes", feed, lambda state: _QuoteLogic(state, config)))
    is_count = op.branch("split_quote_counts", out, lambda item: isinstance(item, Count))
    return is_quote.falses, is_count.falses, is_count.trues
