"""The Kafka feed: one consumer thread, with a bounded cache per series for new sessions."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

import msgspec

from connectors.kafka import topic_for
from connectors.store import TABLES
from dashboard.feed.base import BY_SYMBOL, FOLLOWED, Feed, FeedSettings


class KafkaFeed(Feed):
    """One Kafka consumer on a thread; keeps a bounded cache per series for new sessions.

    Reads the topics of :data:`~dashboard.feed.base.FOLLOWED` (bars, quotes, costs, pairs,
    alerts, trades, pnl, health, scan; a topic not created yet is left out) from the offsets of
    ``lookback_s`` seconds ago (``offsets_for_times``), so a new session sees recent history.
    """

    def __init__(self, settings: FeedSettings, lookback_s: float = 3600.0) -> None:
        super().__init__(settings)
        self.lookback_s = lookback_s
        self._cache: dict[tuple[str, str, str], deque[dict[str, Any]]] = {}
        self._health: dict[str, dict[str, Any]] = {}
        #: The latest scan row of each pair, by timeframe (the universe page shows no history).
        self._scans: dict[str, dict[str, dict[str, Any]]] = {}
        #: Topic → the table its records belong to.
        self._tables = {topic_for(TABLES[t].kind, settings.kafka_prefix): t for t in FOLLOWED}

    def _cache_key(self, table: str, row: dict[str, Any]) -> tuple[str, str, str]:
        name = row["symbol"] if table in BY_SYMBOL else row["pair"]
        return table, name, row["timeframe"]

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        name = where.get("symbol") or where.get("pair")
        key = (table, name, where["timeframe"])
        column = TABLES[table].time_column
        start, end = time_range
        with self._lock:
            rows = list(self._cache.get(key, ()))
        rows = [r for r in rows if (start is None or r[column] >= start)
                and (end is None or r[column] < end)]
        return rows[-limit:] if limit is not None else rows

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream seen on the topic."""
        with self._lock:
            return [self._health[k] for k in sorted(self._health)]

    def scan_timeframes(self) -> list[str]:
        """The timeframes of the scan records seen on the topic."""
        with self._lock:
            return sorted(self._scans)

    def scans(self, timeframe: str) -> list[dict[str, Any]]:
        """The latest scan record of each pair scanned on ``timeframe`` seen on the topic."""
        with self._lock:
            latest = self._scans.get(timeframe, {})
            return [latest[pair] for pair in sorted(latest)]

    def _consumer(self):
        from confluent_kafka import Consumer, TopicPartition

        from pairflow.kafka_client import kafka_client_settings

        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka,
            "group.id": f"pairflow-dashboard-{os.getpid()}-{id(self)}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "socket.connection.setup.timeout.ms": 5000,
            "reconnect.backoff.max.ms": 2000,
            **kafka_client_settings(),  # security settings of [kafka_client]
        })
        since_ms = int((time.time() - self.lookback_s) * 1000)
        wanted = []
        for topic in self._tables:
            metadata = consumer.list_topics(topic, timeout=5)
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            wanted += [TopicPartition(topic, p, since_ms) for p in info.partitions]
        if not wanted:
            consumer.close()
            raise RuntimeError("no pairflow topics yet (is the flow running?)")
        offsets = consumer.offsets_for_times(wanted, timeout=10)
        for tp in offsets:
            if tp.offset < 0:  # no message after the time: start at the end
                tp.offset = -1  # OFFSET_END
        consumer.assign(offsets)
        return consumer

    def _run(self) -> None:
        consumer = None
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                    self._set_ok()
                messages = consumer.consume(num_messages=5000, timeout=0.25)
            except Exception as error:  # noqa: BLE001 - any broker failure is shown, then retried
                self._set_error(f"cannot read {self.settings.source}: {error}")
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stop.wait(2.0)
                continue
            if messages:
                self._take(messages)
        if consumer is not None:
            consumer.close()

    def _take(self, messages: list[Any]) -> None:
        """Cache and publish a batch of consumed messages, per table."""
        batches = self._decode(messages)
        self._set_ok()
        for table, rows in batches.items():
            with self._lock:
                for row in rows:
                    self._cache_row(table, row)
            self._publish(table, rows)

    def _decode(self, messages: list[Any]) -> dict[str, list[dict[str, Any]]]:
        """The messages' records as store-row dicts by table; broken ones are skipped."""
        batches: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            if message.error() is not None:
                self._set_error(f"Kafka: {message.error()}")
                continue
            try:
                row = msgspec.json.decode(message.value())
            except msgspec.DecodeError:
                continue
            row.pop("v", None)
            batches.setdefault(self._tables[message.topic()], []).append(row)
        return batches

    def _cache_row(self, table: str, row: dict[str, Any]) -> None:
        """Keep a row for sessions that open later (called under the lock)."""
        if table == "health":
            self._health[row["stream"]] = row
            return
        if table == "scan":
            latest = self._scans.setdefault(row["timeframe"], {})
            known = latest.get(row["pair"])
            if known is None or known["ts"] <= row["ts"]:
                latest[row["pair"]] = row
            return
        key = self._cache_key(table, row)
        cache = self._cache.get(key)
        if cache is None:
            cache = self._cache[key] = deque(maxlen=max(self.settings.history * 4, 10_000))
        cache.append(row)
