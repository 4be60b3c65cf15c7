"""COIN-M contract sizes: the USD face value of one contract.

COIN-M trades, books and klines count **contracts**, each worth a fixed amount of USD (Binance's
contract specification: 100 USD for BTC contracts, 10 USD for every other coin). pairflow states
COIN-M bar volumes in the units of the other markets — ``volume`` in coins, ``quote_volume`` in
the quote currency (USD) — so a spot leg and a COIN-M leg compare directly: a trade of ``q``
contracts at price ``p`` is ``size·q`` USD and ``size·q / p`` coins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pairflow.named_values import named_items
from pairflow.records import is_coinm, split_symbol

#: USD per contract of Binance's COIN-M BTC contracts (BTCUSD_PERP, BTCUSD_<delivery>).
BTC_CONTRACT_USD = 100.0
#: USD per contract of every other COIN-M contract.
OTHER_CONTRACT_USD = 10.0


def contract_size(symbol: str, sizes: Mapping[str, float] | None = None) -> float | None:
    """The USD face value of one contract of a COIN-M symbol; None on spot and USDⓈ-M.

    Args:
        symbol: a symbol as pairflow names it (``cm:BTCUSD_PERP`` or bare ``BTCUSD_PERP``).
        sizes: sizes by exchange symbol that override Binance's specification (the exchange's
            ``contractSize``, or a user's setting).

    >>> contract_size("cm:BTCUSD_PERP"), contract_size("ETHUSD_PERP"), contract_size("BTCUSDT")
    (100.0, 10.0, None)
    """
    exchange_symbol = split_symbol(symbol)[1]
    if not is_coinm(exchange_symbol):
        return None
    if sizes and exchange_symbol in sizes:
        return sizes[exchange_symbol]
    return BTC_CONTRACT_USD if exchange_symbol.startswith("BTCUSD_") else OTHER_CONTRACT_USD


def parse_contract_sizes(value: Any) -> tuple[tuple[str, float], ...]:
    """USD per contract by COIN-M exchange symbol, from what a user gave: the one check of it.

    Accepts a mapping (a TOML table), ``(symbol, usd)`` pairs or the text ``SYMBOL=USD,...``.

    Raises:
        ValueError: a malformed value, a symbol that is not a COIN-M contract, a repeated one,
            or a size that is not a positive number.

    >>> parse_contract_sizes("btcusd_perp=100, ETHUSD_PERP=10")
    (('BTCUSD_PERP', 100.0), ('ETHUSD_PERP', 10.0))
    """
    items = named_items(value, "use SYMBOL=USD pairs, e.g. BTCUSD_PERP=100,ETHUSD_PERP=10")
    symbols = [symbol.upper() for symbol, _ in items]
    if len(set(symbols)) != len(symbols):
        raise ValueError("a symbol is given twice")
    sizes = []
    for symbol, (_, usd) in zip(symbols, items, strict=True):
        if not is_coinm(symbol):
            raise ValueError(f"{symbol} is not a COIN-M contract (BTCUSD_PERP, ETHUSD_240927 …): "
                             f"only those count contracts")
        try:
            size = float(usd)
        except (TypeError, ValueError):
            raise ValueError(f"{symbol} contract size {usd!r} is not a number of USD") from None
        if isinstance(usd, bool) or not (math.isfinite(size) and size > 0):
            raise ValueError(f"{symbol} contract size must be a positive number of USD, "
                             f"got {usd!r}")
        sizes.append((symbol, size))
    return tuple(sizes)
