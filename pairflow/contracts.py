"""COIN-M contract sizes: the USD face value of one contract.

COIN-M trades, books and klines count **contracts**, each worth a fixed amount of USD (Binance's
contract specification: 100 USD for BTC contracts, 10 USD for every other coin). pairflow states
COIN-M bar volumes in the units of the other markets — ``volume`` in coins, ``quote_volume`` in
the quote currency (USD) — so a spot leg and a COIN-M leg compare directly: a trade of ``q``
contracts at price ``p`` is ``size·q`` USD and ``size·q / p`` coins.
"""

from __future__ import annotations

from collections.abc import Mapping

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
