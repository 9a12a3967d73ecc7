"""A self-signed certificate for ``--tls``, valid for localhost and the addresses we listen on.

Made with the ``cryptography`` package when it is installed (it is not a declared dependency),
otherwise with the ``openssl`` command.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path


def _names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate is valid for."""
    dns = ["localhost", socket.gethostname()]
    addresses = {"127.0.0.1", "::1"}
    try:
        addresses.add(str(ipaddress.ip_address(host)))
    except ValueError:
        dns.append(host)
    return dns, sorted(addresses)


def create_certificate(directory: Path | None, host: str) -> tuple[Path, Path]:
    """Write ``simulator-cert.pem`` and ``simulator-key.pem`` into ``directory`` (a new temp dir if None)."""
    directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="rithmic-sim-tls-"))
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "simulator-cert.pem"
    key_file = directory / "simulator-key.pem"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _with_openssl(cert_file, key_file, host)
    else:
        _with_cryptography(cert_file, key_file, host)
    key_file.chmod(0o600)
    return cert_file, key_file


def _with_openssl(cert_file: Path, key_file: Path, host: str) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("--tls needs the 'cryptography' package or the 'openssl' command: install either")
    dns, ips = _names(host)
    san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{a}" for a in ips])
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key_file),
            "-out",
            str(cert_file),
            "-days",
            "30",
            "-subj",
            "/CN=Rithmic simulator",
            "-addext",
            f"subjectAltName={san}",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )


def _with_cryptography(cert_file: Path, key_file: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    dns, ips = _names(host)
    alt_names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rithmic simulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(cert_file: Path) -> ssl.SSLContext:
    """What a client needs to trust the simulator: the context async_rithmic's ``ssl_context`` takes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert_file)
    return ctx
