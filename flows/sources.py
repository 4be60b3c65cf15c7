"""The input of a flow: recorded files, the live Binance feed or the Kafka ``ticks`` topic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.replay import ReplaySource
from pairflow.config import PairflowConfig
from pairflow.errors import ConfigError


def source_of(config: PairflowConfig, on_progress: Callable | None = None,
              on_input_error: Callable | None = None) -> Any:
    """The input of ``config.source``: files, the Binance feed or the ``ticks`` topic."""
    if config.source == "replay":
        source = ReplaySource(list(config.files), config.symbols, config.speed, on_progress,
                              on_input_error, quotes=config.quotes, market=config.market,
                              contract_sizes=dict(config.contract_sizes))
        for spec in source.files:
            if spec.interval and spec.interval not in config.timeframes:
                raise ConfigError(f"{spec.path.name} holds {spec.interval} candles: add "
                                  f"{spec.interval} to --timeframes")
        return source
    if config.source == "live":
        from connectors.binance.source import BinanceTradeSource

        return BinanceTradeSource.from_config(config)
    from connectors.kafka import KafkaTickSource

    return KafkaTickSource(config.kafka, config.kafka_prefix, tail=config.kafka_follow,
                           partitions=config.kafka_partitions,
                           extra_config=config.kafka_client_config)
