"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, for development and tests.

The broker is the official ``org.apache.kafka:kafka_2.13:4.1.1`` from Maven Central, resolved
by ``kafka/pom.xml`` into the git-ignored ``.cache/kafka/libs`` the first time it is needed and
run with the machine's Java 17 as ``java -cp 'libs/*' kafka.Kafka server.properties``. One JVM
is both controller and broker (``process.roles=broker,controller``); every replication factor
is 1. No Docker and no mock: this is the broker the tests and ``just kafka`` use.

Example:
    >>> with KafkaBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:40123

Command line (``just kafka``)::

    python -m tests.kafka_broker [--port 9092] [--data-dir DIR] [--partitions 3]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from pairflow.errors import PairflowError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
POM_PATH = REPO_ROOT / "kafka" / "pom.xml"
#: Where the broker's jars are cached; ``PAIRFLOW_KAFKA_LIBS`` points elsewhere (e.g. a shared
#: cache on CI).
DEFAULT_LIBS_DIR = Path(os.environ.get("PAIRFLOW_KAFKA_LIBS", REPO_ROOT / ".cache/kafka/libs"))
#: The jar whose presence says a previous resolution finished (jars are copied into a temporary
#: folder and renamed into place, so a half-finished download never looks complete).
_MARKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"


class KafkaBrokerError(PairflowError):
    """The local Kafka broker cannot be installed, started or stopped."""


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = (
            f"`{name}` not found on PATH: {why} "
            "(install Java 17+ and Maven 3.8+: `apt-get install openjdk-17-jre-headless maven`)"
        )
        raise KafkaBrokerError(msg)
    return path


def ensure_kafka_libs(libs_dir: Path | None = None, pom: Path = POM_PATH) -> Path:
    """Make sure the broker's jars are in ``libs_dir``, resolving them with Maven if not.

    Runs ``mvn -q -B dependency:copy-dependencies`` on ``kafka/pom.xml`` once; later calls find
    the cached jars and return at once. A file lock makes concurrent callers (several test
    processes) wait for one download instead of racing.

    Args:
        libs_dir: Target folder; ``.cache/kafka/libs`` of the repository by default.
        pom: The Maven project listing the broker and its slf4j binding.

    Returns:
        The folder holding the jars.

    Raises:
        KafkaBrokerError: ``mvn`` is missing or the resolution failed.
    """
    libs = Path(libs_dir) if libs_dir is not None else DEFAULT_LIBS_DIR
    if (libs / _MARKER_JAR).is_file():
        return libs
    mvn = _require_tool("mvn", "Maven fetches the Kafka broker jars from Maven Central")
    if not pom.is_file():
        msg = f"cannot resolve the Kafka broker: {pom} is missing (run from a pairflow checkout)"
        raise KafkaBrokerError(msg)
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".libs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _MARKER_JAR).is_file():  # another process finished while we waited
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        logger.info("resolving Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
        cmd = [
            mvn, "-q", "-B", "-f", str(pom),
            "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not (staging / _MARKER_JAR).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            msg = f"Maven could not fetch the Kafka broker jars (exit {proc.returncode}): " + (
                " | ".join(tail) or "no output"
            )
            raise KafkaBrokerError(msg)
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    return libs


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker:
    """One KRaft Kafka node (controller + broker) on loopback, owned by this process.

    Ports are chosen when first started (free ports from the kernel) unless given, and kept
    across :meth:`restart`, so clients reconnect to the same address. :meth:`stop` keeps the
    data directory, so a restarted broker has the same topics and messages.

    Args:
        data_dir: Where ``server.properties``, the log segments and ``broker.log`` live; a new
            temporary folder (removed by :meth:`close`) when ``None``.
        port: PLAINTEXT listener port; a free one when ``None``.
        controller_port: KRaft controller listener port; a free one when ``None``.
        num_partitions: Partitions of auto-created topics.
        heap: JVM maximum heap (``-Xmx``).
        startup_timeout_s: How long :meth:`start` waits for the broker to answer.
        libs_dir: Folder of the broker jars (resolved with Maven if missing).
        sasl_ssl: Also listen for SASL_SSL clients (mechanism PLAIN, the user and password of
            :mod:`tests.kafka_tls`) on :attr:`sasl_bootstrap`, with a self-signed certificate
            made by ``openssl`` (:attr:`ca_path`).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        num_partitions: int = 3,
        heap: str = "512m",
        startup_timeout_s: float = 90.0,
        libs_dir: str | Path | None = None,
        sasl_ssl: bool = False,
    ) -> None:
        if num_partitions < 1:
            msg = f"num_partitions must be at least 1, got {num_partitions}"
            raise KafkaBrokerError(msg)
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._fixed_ports = port is not None
        self.port = port
        self.controller_port = controller_port
        self.num_partitions = num_partitions
        self.heap = heap
        self.startup_timeout_s = startup_timeout_s
        self._libs_dir = Path(libs_dir) if libs_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self.sasl_ssl = sasl_ssl
        self.sasl_port: int | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrap.servers``."""
        if self.port is None:
            msg = "the broker has no port yet: call start() first"
            raise KafkaBrokerError(msg)
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """``host:port`` of the SASL_SSL listener (``sasl_ssl=True``)."""
        if self.sasl_port is None:
            msg = "the broker has no SASL_SSL listener: start it with sasl_ssl=True"
            raise KafkaBrokerError(msg)
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ca_path(self) -> Path:
        """The SASL_SSL listener's self-signed certificate, for ``ssl.ca.location``."""
        assert self.data_dir is not None
        return self.data_dir / "tls" / "broker-cert.pem"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The broker's own log file (stdout and stderr of the JVM)."""
        return None if self.data_dir is None else self.data_dir / "broker.log"

    def start(self) -> KafkaBroker:
        """Start the broker (formatting its storage on first start) and wait until it answers.

        Returns:
            ``self``, so ``broker = KafkaBroker().start()`` reads naturally.

        Raises:
            KafkaBrokerError: Java or Maven is missing, the broker exited, or it did not answer
                within ``startup_timeout_s``.
        """
        if self.running:
            return self
        java = _require_tool("java", "the Kafka broker runs on the JVM")
        libs = ensure_kafka_libs(self._libs_dir)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="pairflow-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A port picked by the kernel can be taken by someone else before the JVM binds it;
        # with kernel-picked ports, try again with new ones instead of failing the test run.
        attempts = 1 if self._fixed_ports else 3
        for attempt in range(attempts):
            if self.port is None or (attempt > 0 and not self._fixed_ports):
                self.port = _free_port()
            if self.controller_port is None or attempt > 0:
                self.controller_port = _free_port()
            if self.sasl_ssl and (self.sasl_port is None or attempt > 0):
                self.sasl_port = _free_port()
            props = self._write_properties()
            self._format_storage(java, libs, props)
            try:
                self._spawn_and_wait(java, libs, props)
                return self
            except KafkaBrokerError:
                self.stop()
                if attempt == attempts - 1 or self._log_tail().find("Address already in use") < 0:
                    raise
                logger.warning("kafka port taken, retrying with new ports")
        raise AssertionError("unreachable")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); keeps the data dir.

        Safe to call when the broker is not running.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("kafka broker did not stop in %.0f s, killing it", timeout_s)
                proc.kill()
                proc.wait()
        # Wait until the port is released too, so an immediate restart can bind it again.
        deadline = time.monotonic() + 10
        while self.port is not None and _port_accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would; keeps the data dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> KafkaBroker:
        """Stop and start the same broker: same ports, same data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and remove its data dir if this object created it."""
        self.stop()
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _write_properties(self) -> Path:
        assert self.data_dir is not None
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            # One partition each: internal topics of 50 partitions take seconds to create on
            # first use, which every test session would pay for.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.sasl_ssl:
            from tests.kafka_tls import sasl_ssl_properties

            props.update(sasl_ssl_properties(self.ca_path.parent, self.port,
                                             self.sasl_port, self.controller_port))
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _format_storage(self, java: str, libs: Path, props: Path) -> None:
        assert self.data_dir is not None
        if (self.data_dir / "logs" / "meta.properties").is_file():
            return  # formatted by an earlier start: keep the data
        # With a static quorum (controller.quorum.voters) 4.1 formats without --standalone;
        # --standalone is for the dynamic-quorum form (controller.quorum.bootstrap.servers).
        cmd = [
            java, "-cp", f"{libs}/*", "kafka.tools.StorageTool",
            # "--cluster-id=…" as one word: a random id may begin with "-".
            "format", f"--cluster-id={_cluster_id()}", "-c", str(props),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
            msg = f"formatting Kafka storage in {self.data_dir} failed: {tail}"
            raise KafkaBrokerError(msg)

    def _spawn_and_wait(self, java: str, libs: Path, props: Path) -> None:
        assert self.data_dir is not None and self.port is not None
        log_path = self.data_dir / "broker.log"
        cmd = [
            java, f"-Xmx{self.heap}", "-Xms128m", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp", f"{libs}/*", "kafka.Kafka", str(props),
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            log.write(f"\n==== starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                # Own process group: a Ctrl-C in the terminal reaches our handler, which then
                # stops the broker in order, instead of killing the JVM mid-write.
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.port is not None
        deadline = time.monotonic() + self.startup_timeout_s
        # Probe the socket first: librdkafka logs every refused connection, and the JVM needs
        # a few seconds before it listens at all.
        while not _port_accepts(self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                self._timeout()
            time.sleep(0.1)
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})
        while True:
            self._check_alive()
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:  # noqa: BLE001 - not answering yet is expected while it starts
                pass
            if time.monotonic() > deadline:
                self._timeout()
            time.sleep(0.1)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            self._proc = None
            msg = f"the Kafka broker exited with code {code}: {self._log_tail()}"
            raise KafkaBrokerError(msg)

    def _timeout(self) -> None:
        msg = (
            f"the Kafka broker did not answer on {self.bootstrap} within "
            f"{self.startup_timeout_s:.0f} s (log: {self.log_path})"
        )
        raise KafkaBrokerError(msg)

    def _log_tail(self, lines: int = 5) -> str:
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        text = path.read_text(errors="replace").strip().splitlines()
        interesting = [ln for ln in text if "ERROR" in ln or "Exception" in ln] or text
        return " | ".join(interesting[-lines:])


def main(argv: list[str] | None = None) -> int:
    """Run one broker in the foreground until Ctrl-C or SIGTERM (``just kafka``)."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.kafka_broker",
        description="Run a single-node Apache Kafka broker (KRaft) on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=9092, help="PLAINTEXT port (0 = any free)")
    parser.add_argument("--controller-port", type=int, default=0, help="0 = any free port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / ".cache/kafka/data",
        help="where topics are stored; kept between runs (default: .cache/kafka/data)",
    )
    parser.add_argument("--partitions", type=int, default=3, help="partitions of new topics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    broker = KafkaBroker(
        data_dir=args.data_dir,
        port=args.port or None,
        controller_port=args.controller_port or None,
        num_partitions=args.partitions,
    )

    def _on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        broker.start()
        print(f"Kafka {KAFKA_VERSION} ready: bootstrap {broker.bootstrap}", flush=True)
        print(f"data: {broker.data_dir}  log: {broker.log_path}  (Ctrl-C stops)", flush=True)
        while broker.running:
            time.sleep(0.5)
        print(f"the broker exited: {broker._log_tail()}", file=sys.stderr)
        return 1
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopping Kafka …", flush=True)
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
