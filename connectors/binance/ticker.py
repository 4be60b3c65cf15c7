"""The ``top:K`` universe: the K symbols with the largest 24 h quote volume on the exchange.

Read once, when a live run starts, from the exchange's 24 h ticker (``GET
/api/v3/ticker/24hr`` on spot, ``/fapi/v1/ticker/24hr`` on USDⓈ-M futures): every symbol's
rolling 24 h statistics, ranked here by ``quoteVolume`` (ties: by name). A run keeps the
universe it started with; restarting it (e.g. daily) refreshes the ranking.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from pairflow.errors import ConfigError
from pairflow.records import SYMBOL_PATTERN

__all__ = ["TOP_PATTERN", "top_symbols"]

#: ``top:K`` as the universe setting.
TOP_PATTERN = re.compile(r"^\s*top:(\d+)\s*$", re.IGNORECASE)
_TICKER_PATH = {"spot": "/api/v3/ticker/24hr", "usdm": "/fapi/v1/ticker/24hr"}


def top_symbols(rest_url: str, market: str, count: int,
                timeout_s: float = 10.0) -> tuple[str, ...]:
    """The ``count`` symbols with the largest 24 h quote volume, largest first.

    Args:
        rest_url: the exchange's REST base URL.
        market: ``spot`` or ``usdm``.
        count: how many (at least 2).
        timeout_s: the request's timeout.

    Raises:
        ConfigError: a count below 2, an unreachable exchange or an answer that is not a
            24 h ticker list.
    """
    if count < 2:
        raise ConfigError(f"top:{count}: a universe needs at least two symbols")
    if market not in _TICKER_PATH:
        raise ConfigError(f"top:{count} ranks by quote volume, which the {market} ticker "
                          "does not give: name the symbols")
    url = rest_url.rstrip("/") + _TICKER_PATH[market]
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http(s) base URL
            rows = json.loads(response.read())
        volumes = [(float(row["quoteVolume"]), str(row["symbol"])) for row in rows]
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ConfigError(f"cannot read the 24 h ticker from {url}: {error}") from None
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{url} did not answer a 24 h ticker list: {error!r}") from None
    ranked = sorted(((v, s) for v, s in volumes if SYMBOL_PATTERN.match(s)),
                    key=lambda pair: (-pair[0], pair[1]))
    if len(ranked) < count:
        raise ConfigError(f"top:{count}: the exchange lists only {len(ranked)} symbols")
    return tuple(symbol for _, symbol in ranked[:count])
