"""librdkafka's own log lines and error callbacks, routed to ``logging``."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

logger = logging.getLogger(__name__)


class _LibrdkafkaLog:
    """Routes librdkafka's own log lines to ``logging`` at DEBUG.

    At its default level librdkafka logs each refused reconnect (every ~100 ms while a broker
    restarts) as an error on stderr. What matters reaches the caller anyway: failed deliveries
    through delivery reports, fatal errors through ``error_cb``.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger(f"{__name__}.librdkafka")

    def log(self, level: int, msg: str, *args: object) -> None:
        self._logger.debug(msg, *args)


#: The ``logger`` every pairflow Kafka client is configured with.
librdkafka_log = _LibrdkafkaLog()


def log_consumer_error(err: KafkaError) -> None:
    """``error_cb`` of consumers: log transport errors, which librdkafka retries anyway.

    Without an error callback librdkafka would hand them (broker restarting) to ``consume()``
    as messages.
    """
    logger.warning("kafka consumer error err=%s", err.str())
