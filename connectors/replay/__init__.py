"""Replay of recorded trades, merged by receive time into one ordered stream.

Inputs are recorder captures, data.binance.vision CSV dumps and pairflow NDJSON tick dumps.

Layouts (told apart from the file's first bytes, never from its name alone):

- *recording*: ``<local_receive_time_ns> <frame exactly as received>`` per line, gzip or
  plain — what ``pairflow record`` writes and what ``../shared/data`` holds;
- *trades CSV* / *aggTrades CSV*: data.binance.vision daily dumps, zipped or not, with or
  without a header, millisecond or microsecond times; the symbol comes from the file name
  (``BTCUSDT-trades-2024-08-08.zip``);
- *tick NDJSON*: one pairflow ``Tick`` JSON object per line.

Files may come in any order and may overlap: they are ordered by their first receive time and
merged block by block on receive time (trade time for CSV), so a replay sees trades in the
order the recorder received them; duplicates are dropped later, by trade id, in the bar step.

Modules, one job each: ``files`` (opening and decompressing), ``formats`` (telling a file's
layout), ``readers`` (each layout's lines as blocks), ``merge`` (the merge on receive time),
``source`` (the Bytewax source and its pacing).
"""

from connectors.replay.formats import InputFile, Layout, inspect_file
from connectors.replay.merge import MergedReplay, ReplayBatch
from connectors.replay.source import ReplayItem, ReplaySource

__all__ = [
    "InputFile",
    "Layout",
    "MergedReplay",
    "ReplayBatch",
    "ReplayItem",
    "ReplaySource",
    "inspect_file",
]
