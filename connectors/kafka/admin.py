"""Topic administration: create the topics a sink or source needs, once, race-safe.

Every wait on the brokers runs in slices of :data:`~connectors.kafka.producer.WAIT_SLICE_S`, so
a stop signal is honoured at once, and reaching them is bounded by :data:`REACH_TIMEOUT_S`: an
address where no broker answers fails the run within seconds, not after the creation timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from connectors.kafka.logs import librdkafka_log
from connectors.kafka.producer import WAIT_SLICE_S
from pairflow.errors import SinkError

logger = logging.getLogger(__name__)

#: Longest wait for a first answer from the brokers (``docs/bad-input.md`` states it).
REACH_TIMEOUT_S: Final = 5.0


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    extra_config: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet, with ``partitions`` partitions each.

    Safe to call from several workers at once: "already exists" is success. A topic that
    exists with another partition count is kept as it is (and logged).

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topics: Full topic names.
        partitions: Partitions of each topic this creates.
        extra_config: Client settings; those an admin client accepts (security, sockets) are
            used.
        timeout_s: Longest wait for the creation and for the new topics to show up in the
            metadata; reaching the brokers at all takes at most :data:`REACH_TIMEOUT_S` of it.

    Raises:
        SinkError: the brokers cannot be reached or refuse to create a topic.
    """
    if partitions < 1:
        msg = f"partitions must be at least 1, got {partitions}"
        raise SinkError(msg)
    admin, refusals = _admin(bootstrap, extra_config)
    wanted = list(dict.fromkeys(topics))
    existing = _reach(admin, refusals, bootstrap, wanted, min(REACH_TIMEOUT_S, timeout_s)).topics
    missing = [topic for topic in wanted if _absent(existing.get(topic), partitions)]
    if not missing:
        return
    new = [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing]
    futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
    for topic, future in futures.items():
        _created(future, topic, bootstrap, partitions)
    _await_metadata(admin, missing, timeout_s)


#: librdkafka errors that no retry mends: the brokers refuse the client's credentials or TLS.
_REFUSALS = (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED)


def _admin(bootstrap: str, extra_config: dict[str, Any] | None) -> tuple[AdminClient, list[str]]:
    """An admin client and the list its error callback fills with refusals (auth, TLS)."""
    refusals: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() in _REFUSALS:
            refusals.append(err.str())

    config = {**_admin_config(bootstrap, extra_config), "logger": librdkafka_log,
              "error_cb": on_error}
    return AdminClient(config), refusals


def _reach(
    admin: AdminClient, refusals: list[str], bootstrap: str, wanted: list[str], timeout_s: float
) -> ClusterMetadata:
    """The cluster's metadata, asked in slices until ``timeout_s``.

    A refusal of the credentials or of TLS ends the wait at once: retrying cannot mend it.
    The message names the setting to check, never a setting's value.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return admin.list_topics(timeout=WAIT_SLICE_S)
        except KafkaException as exc:
            admin.poll(0)  # serve the error callback
            if refusals:
                msg = (
                    f"Kafka at {bootstrap} refused the connection: {refusals[0]} (check the "
                    "security settings: [kafka_client] / PAIRFLOW_KAFKA_CLIENT_*)"
                )
                raise SinkError(msg) from None
            if time.monotonic() >= deadline:
                msg = (
                    f"cannot reach Kafka at {bootstrap} within {timeout_s:g} s to check "
                    f"topics {wanted}: {exc.args[0].str()}"
                )
                raise SinkError(msg) from exc


def _absent(meta: Any, partitions: int) -> bool:
    """Whether a topic must be created; logs one that exists with another partition count."""
    if meta is None or meta.error is not None:
        return True
    if len(meta.partitions) != partitions:
        logger.info(
            "kafka topic exists topic=%s partitions=%d configured=%d",
            meta.topic, len(meta.partitions), partitions,
        )  # fmt: skip
    return False


def _created(future: Any, topic: str, bootstrap: str, partitions: int) -> None:
    """Wait (in slices) for one topic's creation; "already exists" is success."""
    while True:
        try:
            future.result(timeout=WAIT_SLICE_S)
        except TimeoutError:
            continue
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return  # another worker or process won the race
            msg = f"cannot create Kafka topic {topic!r} on {bootstrap}: {err.str()}"
            raise SinkError(msg) from exc
        logger.info("kafka topic created topic=%s partitions=%d", topic, partitions)
        return


def _await_metadata(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    # Creation returns before every broker's metadata has the topic; wait for it, so a consumer
    # listing partitions right after (KafkaTickSource) does not see "unknown topic".
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            known = admin.list_topics(timeout=WAIT_SLICE_S).topics
            if all(_ready(known.get(t)) for t in topics):
                return
        except KafkaException:
            pass  # asked again until the deadline
        if time.monotonic() > deadline:
            msg = f"Kafka topics {topics} were created but do not show up in metadata"
            raise SinkError(msg)
        time.sleep(0.05)


def _ready(meta: Any) -> bool:
    return (
        meta is not None
        and meta.error is None
        and bool(meta.partitions)
        and all(p.leader >= 0 for p in meta.partitions.values())
    )


def _admin_config(bootstrap: str, extra_config: dict[str, Any] | None) -> dict[str, Any]:
    # The AdminClient rejects producer- and consumer-only settings that callers put in
    # extra_config; it needs only where the brokers are and how to reach them.
    shared = ("security.", "sasl.", "ssl.", "socket.", "client.", "broker.", "metadata.")
    config = {k: v for k, v in (extra_config or {}).items() if k.startswith(shared) or k == "debug"}
    return {"bootstrap.servers": bootstrap, **config}


def list_partitions(
    bootstrap: str, topic: str, extra_config: dict[str, Any] | None = None
) -> list[int]:
    """The partition indexes of ``topic``, ascending.

    Raises:
        SinkError: the brokers cannot be reached or do not know the topic.
    """
    admin, refusals = _admin(bootstrap, extra_config)
    meta = _reach(admin, refusals, bootstrap, [topic], REACH_TIMEOUT_S).topics.get(topic)
    if meta is None or meta.error is not None:
        why = "unknown topic" if meta is None else meta.error.str()
        msg = f"cannot list the partitions of Kafka topic {topic!r} on {bootstrap}: {why}"
        raise SinkError(msg)
    return sorted(meta.partitions)
