"""A Kafka that requires authentication: SASL PLAIN over TLS, set through ``[kafka_client]``.

The broker listens for SASL_SSL with a certificate ``openssl`` made for the test; every client
pairflow opens (the replay's producers and admin, the worker's consumer) gets the settings
from the TOML table and ``PAIRFLOW_KAFKA_CLIENT_*`` variables. A wrong password is one line
and exit code 2; the password shows up nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pairflow.config import load_config
from pairflow.kafka_client import kafka_client_settings
from tests.helpers import store_records
from tests.kafka_tls import SASL_PASSWORD, SASL_USER

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted(str(p) for p in (ROOT / "pairflow" / "data").glob("*.gz"))
PASSWORD_VARIABLE = "PAIRFLOW_KAFKA_CLIENT_SASL_PASSWORD"


def _run(args: list[str], password: str, config: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env = {**clean, "PAIRFLOW_CONFIG": str(config), PASSWORD_VARIABLE: password}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def test_sasl_ssl_through_kafka_client_settings(tmp_path, kafka_broker_factory):
    broker = kafka_broker_factory(sasl_ssl=True)
    config = tmp_path / "pairflow.toml"
    # The password is not in the file: it comes from the environment, as a secret would.
    config.write_text(
        "[kafka_client]\n"
        'security.protocol = "SASL_SSL"\n'
        'sasl.mechanism = "PLAIN"\n'
        f'sasl.username = "{SASL_USER}"\n'
        f'"ssl.ca.location" = "{broker.ca_path}"\n')
    common = ["--symbols", "BTCUSDT,ETHUSDT", "--timeframes", "1s,1m", "--kafka",
              broker.sasl_bootstrap, "--kafka-prefix", "sec."]
    replay = _run(["replay", *TAPE, *common, "--store", str(tmp_path / "replay.db"),
                   "--ticks-to-kafka"], SASL_PASSWORD, config)
    assert replay.returncode == 0, replay.stderr
    worker = _run(["worker", *common, "--no-follow", "--store", str(tmp_path / "worker.db")],
                  SASL_PASSWORD, config)
    assert worker.returncode == 0, worker.stderr
    bars = {"bars": "bar"}
    assert store_records(tmp_path / "worker.db", bars) == store_records(tmp_path / "replay.db",
                                                                        bars)

    wrong = "not-the-password-0c9e"
    refused = _run(["worker", *common, "--no-follow", "--store", str(tmp_path / "no.db")],
                   wrong, config)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: Kafka at {broker.sasl_bootstrap} refused the connection: "), refused.stderr
    assert "Authentication failed" in lines[0]
    shown = _run(["worker", "--help"], wrong, config)
    for result in (replay, worker, refused, shown):
        assert SASL_PASSWORD not in result.stdout + result.stderr
        assert wrong not in result.stdout + result.stderr


def test_kafka_client_settings_are_checked_and_never_shown(tmp_path):
    env = {"PAIRFLOW_KAFKA_CLIENT_SECURITY_PROTOCOL": "SASL_SSL",
           PASSWORD_VARIABLE: "s3cret-value"}
    config = load_config({"symbols": "BTCUSDT", "files": ["x"]}, env=env)
    assert config.kafka_client_config == {"security.protocol": "SASL_SSL",
                                          "sasl.password": "s3cret-value"}
    assert "s3cret-value" not in repr(config)
    toml = tmp_path / "c.toml"
    toml.write_text("[kafka_client]\nsasl.password = \"from-file\"\n\"socket.keepalive.enable\" = "
                    "true\n")
    assert kafka_client_settings({"PAIRFLOW_CONFIG": str(toml)}) == {
        "sasl.password": "from-file", "socket.keepalive.enable": "true"}
    # Variables override the file's table, as every other setting's do.
    assert kafka_client_settings({"PAIRFLOW_CONFIG": str(toml), PASSWORD_VARIABLE: "env"})[
        "sasl.password"] == "env"
    for bad, message in ((["acks"], "set by pairflow"), (["Bad Name"], "not a librdkafka name")):
        toml.write_text(f'[kafka_client]\n"{bad[0]}" = "hidden-value"\n')
        with pytest.raises(Exception, match=message) as error:
            load_config({"symbols": "BTCUSDT", "files": ["x"]}, env={}, toml_path=toml)
        assert "hidden-value" not in str(error.value)
