"""COIN-M contract sizes as the exchange states them (``GET /dapi/v1/exchangeInfo``).

A live COIN-M run reads each symbol's ``contractSize`` (USD per contract) once, when it starts,
so its bars' coin and USD volumes follow the exchange rather than a table pairflow keeps; a
size the user set (``contract_sizes``) wins. When the exchange cannot be read the run goes on
with Binance's published specification (:mod:`pairflow.contracts`) and says so in the log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.request

from connectors.binance.rest import REST_PREFIX
from connectors.binance.settings import LiveSettings
from pairflow.config import PairflowConfig
from pairflow.records import split_symbol

__all__ = ["exchange_contract_sizes", "with_exchange_contract_sizes"]

logger = logging.getLogger(__name__)


def exchange_contract_sizes(rest_url: str, timeout_s: float = 10.0) -> dict[str, float]:
    """``contractSize`` (USD) of every COIN-M symbol the exchange lists.

    Raises:
        OSError: the exchange cannot be reached (``urllib.error.URLError`` is one).
        ValueError: the answer is not an exchange-information object.
    """
    url = rest_url.rstrip("/") + REST_PREFIX["cm"] + "/exchangeInfo"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http(s) base URL
        listed = json.loads(response.read())["symbols"]
    try:
        return {str(row["symbol"]): float(row["contractSize"]) for row in listed
                if "contractSize" in row}
    except (TypeError, KeyError) as error:
        raise ValueError(f"{url} lists a symbol without a usable contractSize: {error!r}") \
            from None


def with_exchange_contract_sizes(config: PairflowConfig) -> PairflowConfig:
    """``config`` with the exchange's contract sizes of its COIN-M symbols (the user's win).

    Only a live COIN-M run asks the exchange; any other ``config`` is returned as it is.
    """
    if config.source != "live" or config.market != "cm":
        return config
    rest_url = LiveSettings.from_env(market="cm", rest_url=config.rest_url).base_rest_url
    try:
        listed = exchange_contract_sizes(rest_url)
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("cannot read COIN-M contract sizes from %s (%s): using Binance's "
                       "specification (100 USD for BTC contracts, 10 for others)", rest_url,
                       error)
        return config
    symbols = {split_symbol(name)[1] for name in config.symbols}
    sizes = {symbol: size for symbol, size in listed.items() if symbol in symbols}
    given = dict(config.contract_sizes)
    return dataclasses.replace(config, contract_sizes=tuple(sorted({**sizes, **given}.items())))
