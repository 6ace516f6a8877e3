"""TLS for the server: a context that refuses anything below TLS 1.3, and a self-signed certificate for a quick start."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from r1stack.errors import UserError


def tls13_context_factory(config, default_factory) -> ssl.SSLContext:
    """uvicorn's ssl_context_factory hook: its usual context, then the floor raised to TLS 1.3."""
    ctx = default_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def check_cert_pair(certfile: Path | None, keyfile: Path | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise UserError("give both --ssl-certfile and --ssl-keyfile, or neither (or use --self-signed)")
    for p in (certfile, keyfile):
        if p is not None and not Path(p).is_file():
            raise UserError(f"TLS file {p} does not exist; give a PEM file or use --self-signed")
    if certfile is not None:
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(certfile), str(keyfile))
        except (ssl.SSLError, OSError) as e:
            raise UserError(
                f"cannot load the TLS certificate/key pair: {e}; check the files are PEM and match"
            ) from e


def make_self_signed(directory: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A one-year EC P-256 certificate for `hosts` (and localhost), written as cert.pem/key.pem in `directory`.

    Reused while it is still valid for these hosts, so clients that pinned it keep working across restarts.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    names = sorted({*hosts, "localhost", "127.0.0.1"})
    if cert_path.exists() and key_path.exists():
        try:
            old = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
            have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
            fresh = old.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            if fresh and set(names) <= have:
                return cert_path, key_path
        except Exception:  # unreadable or foreign: make a new one
            pass

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "r1stack self-signed")])
    alt = []
    for h in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # CA:TRUE lets clients trust this very file as their CA bundle (verify=cert.pem).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
