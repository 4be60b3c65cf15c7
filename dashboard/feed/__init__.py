"""The dashboard's data feed: ONE per server process, fanned out to every browser session.

A feed is either a store poller (:mod:`dashboard.feed.store`: a thread tailing the SQLite store
through the store's own reader) or a Kafka consumer (:mod:`dashboard.feed.kafka`: a thread
reading the ``bars``/``quotes``/``costs``/``pairs``/``alerts``/``health``/``scan`` topics). New
rows go into one bounded log with a sequence number; each session keeps a cursor and, from its
periodic callback, takes the rows after it (:meth:`Feed.since`). A session reads its initial
history with :meth:`Feed.pairs` and friends (from the store, or from the Kafka consumer's
bounded per-key cache; :meth:`Feed.scans`: the latest scan row of each pair) before it starts
following the log.

A feed never raises to a session: failures (store missing or unreadable, broker down) set
:attr:`Feed.status`, which sessions show as a banner, and the thread keeps retrying.
"""

from __future__ import annotations

import threading

from dashboard.feed.base import Feed, FeedSettings, FeedStatus
from dashboard.feed.kafka import KafkaFeed
from dashboard.feed.store import StoreFeed

__all__ = ["Feed", "FeedSettings", "FeedStatus", "KafkaFeed", "StoreFeed", "get_feed"]

_FEEDS: dict[FeedSettings, Feed] = {}
_FEEDS_LOCK = threading.Lock()


def get_feed(settings: FeedSettings) -> Feed:
    """The process's feed for ``settings``, started on first use."""
    with _FEEDS_LOCK:
        feed = _FEEDS.get(settings)
        if feed is None:
            feed = StoreFeed(settings) if settings.store is not None else KafkaFeed(settings)
            _FEEDS[settings] = feed.start()
        return feed
