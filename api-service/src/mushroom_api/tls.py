"""A self-signed certificate for serving HTTPS on a local network (`--tls-self-signed`).

A phone only runs the service worker (offline identification) in a secure context: https, or
http on localhost. On the same Wi-Fi the API is neither, so it can serve HTTPS with a
certificate made here. The certificate is kept and reused while it is valid and names the same
addresses, so a phone that was told to trust it once keeps trusting it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

VALID_DAYS = 365
RENEW_BEFORE_DAYS = 7


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files uvicorn serves with."""

    certfile: Path
    keyfile: Path


def local_addresses(host: str) -> list[str]:
    """The names and IP addresses a client on this machine or its network may use."""
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in ("0.0.0.0", "::", ""):
        names.append(host)
    else:
        hostname = socket.gethostname()
        names.append(hostname)
        try:
            names += [str(info[4][0]) for info in socket.getaddrinfo(hostname, None)]
        except OSError:
            logger.warning("cannot resolve %s: the certificate names localhost only", hostname)
        # The address of the interface that would reach another machine (no packet is sent).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(("192.0.2.1", 9))
                names.append(probe.getsockname()[0])
            except OSError:
                pass
    return list(dict.fromkeys(str(n).split("%", 1)[0] for n in names))


def _subject_names(names: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _still_good(certfile: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
        covered = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    renew_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=RENEW_BEFORE_DAYS)
    return cert.not_valid_after_utc > renew_at and all(
        n in list(covered) for n in _subject_names(names)
    )


def self_signed_certificate(directory: Path, host: str) -> TlsFiles:
    """Reuse or make a self-signed certificate (its own CA, so a phone can trust it) for `host`.

    Args:
        directory: where `cert.pem` and `key.pem` live (the key is readable by the owner only).
        host: the interface the server listens on; 0.0.0.0 names this machine's addresses.

    Returns:
        The certificate and key files.
    """
    names = local_addresses(host)
    files = TlsFiles(directory / "cert.pem", directory / "key.pem")
    if files.keyfile.is_file() and _still_good(files.certfile, names):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mushroom ID (self-signed)")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_subject_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    files.keyfile.touch(mode=0o600, exist_ok=True)
    files.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("made a self-signed certificate for %s in %s", ", ".join(names), directory)
    return files
