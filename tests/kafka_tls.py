"""A SASL_SSL listener for the test broker: PLAIN over TLS with a certificate made by openssl.

Used by :class:`tests.kafka_broker.KafkaBroker` with ``sasl_ssl=True``; the client side needs
``security.protocol=SASL_SSL``, ``sasl.mechanism=PLAIN``, :data:`SASL_USER` /
:data:`SASL_PASSWORD` and ``ssl.ca.location`` = the broker's ``ca_path``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.kafka_broker import KafkaBrokerError

#: The one SASL user of the listener, and its password (a test-only secret).
SASL_USER = "pairflow"
SASL_PASSWORD = "test-only-secret-5f1c"
#: File names in the broker's TLS folder.
CERTIFICATE = "broker-cert.pem"
_KEY = "broker-key.pem"
_KEYSTORE = "broker-keystore.pem"


def sasl_ssl_properties(tls: Path, port: int | None, sasl_port: int | None,
                        controller_port: int | None) -> dict[str, str]:
    """Broker properties adding a SASL_SSL listener next to PLAINTEXT: PLAIN over TLS."""
    keystore = make_certificate(tls)
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USER}="{SASL_PASSWORD}";')
    return {
        "listeners": (f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port},"
                      f"CONTROLLER://127.0.0.1:{controller_port}"),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"),
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
    }


def make_certificate(tls: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and its key in ``tls`` (once); the keystore."""
    keystore = tls / _KEYSTORE
    if keystore.is_file():
        return keystore
    tls.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = "`openssl` not found on PATH: the SASL_SSL listener needs a certificate"
        raise KafkaBrokerError(msg)
    cmd = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", str(tls / _KEY), "-out", str(tls / CERTIFICATE),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"openssl could not make the broker certificate: {proc.stderr.strip()[-300:]}"
        raise KafkaBrokerError(msg)
    # A PEM keystore is the private key (PKCS#8) followed by the certificate chain.
    keystore.write_text((tls / _KEY).read_text() + (tls / CERTIFICATE).read_text())
    return keystore
