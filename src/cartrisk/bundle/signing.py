"""Signed bundles: an Ed25519 signature over the manifest, checked against the keys a user trusts.

The manifest (``MANIFEST.json``) lists the SHA-256 of every file of a bundle, so it detects a changed byte,
but anyone who changes a file can rewrite the manifest too. A signature closes that gap: ``cartrisk export
--sign KEY`` signs the manifest with a private key (``SIGNATURE.json`` beside it), and ``--trust PUBKEY``
(or the trusted-keys setting, :data:`TRUSTED_KEYS_ENV`) refuses any bundle that is not signed by one of the
trusted keys. A bundle whose signature does not match its manifest is refused whether trust was asked for or
not: it was altered after signing.

The cryptography is the ``cryptography`` package's Ed25519 (RFC 8032); nothing here is home-made but the file
layout. Keys are PEM files: ``NAME.key`` (PKCS #8, private: keep it to yourself, mode 0600) and ``NAME.pub``
(SubjectPublicKeyInfo, to hand to whoever scores with the bundle). A key is known by its fingerprint, the
SHA-256 of its 32 raw public bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cartrisk.bundle._format import MANIFEST_FILE, SIGNATURE_FILE
from cartrisk.exceptions import BundleError, ConfigError

__all__ = ["SIGNATURE_FILE", "TRUSTED_KEYS_ENV", "Signature", "check_fingerprint", "generate_keypair",
           "key_fingerprint", "load_signing_key", "load_trusted_keys", "sign_bundle", "trusted_keys_setting",
           "verify_signature"]

#: The trusted-keys setting: public key files (or folders of ``*.pub`` files), separated by ``os.pathsep``.
#: When set, :func:`cartrisk.bundle.load_bundle` and every command that loads a bundle require its signature.
TRUSTED_KEYS_ENV = "CARTRISK_TRUSTED_KEYS"
_CONTEXT = b"cartrisk bundle signature v1\n"  # signed before the manifest's bytes: a signature means nothing else
_FORMAT = 1


@dataclass(frozen=True)
class Signature:
    """A bundle's verified signature.

    Attributes
    ----------
    key_fingerprint : str
        SHA-256 (hex) of the signing key's raw public bytes.
    trusted : bool
        True when the key is one of the trusted keys the bundle was loaded with.
    """

    key_fingerprint: str
    trusted: bool


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_fingerprint(public_key) -> str:
    """SHA-256 (hex) of an Ed25519 public key's 32 raw bytes."""
    s = _serialization()
    return hashlib.sha256(public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)).hexdigest()


def generate_keypair(stem: str | Path, *, overwrite: bool = False) -> tuple[Path, Path, str]:
    """Write a new Ed25519 key pair ``STEM.key`` (private, mode 0600) and ``STEM.pub``; return them and the
    key's fingerprint.

    Raises
    ------
    ConfigError
        A key file exists (and ``overwrite`` is False), or the folder cannot be written.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    s = _serialization()
    stem = Path(stem)
    private, public = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"--out: {', '.join(existing)} exist(s); choose another name, or pass --overwrite to "
                          "replace the key pair (bundles signed with the old key will no longer verify against it)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    public_pem = key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(private_pem)
        public.write_bytes(public_pem)
    except OSError as err:
        raise ConfigError(f"--out: cannot write the key pair at {stem} ({err.strerror}); choose a folder you can "
                          "write") from None
    return private, public, key_fingerprint(key.public_key())


def load_signing_key(path: str | Path):
    """Read an Ed25519 private key (PEM, PKCS #8, as :func:`generate_keypair` writes it).

    Raises
    ------
    ConfigError
        The file is missing, is not a private key, or is not an Ed25519 key; the message names it.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--sign: {path}: no such key file; make a key pair with `cartrisk keygen --out NAME` and "
                          "sign with NAME.key")
    try:
        key = _serialization().load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as err:
        hint = " (that is the public key: sign with the .key file)" if b"PUBLIC KEY" in _head(path) else ""
        raise ConfigError(f"--sign: {path}: not an unencrypted PEM private key{hint} ({err})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"--sign: {path}: a {type(key).__name__}, not an Ed25519 key; make one with "
                          "`cartrisk keygen`")
    return key


def _head(path: Path) -> bytes:
    try:
        return path.read_bytes()[:100]
    except OSError:
        return b""


def _public_key_files(entry: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(entry.glob("*.pub"))
    return [entry]


def load_trusted_keys(paths: Iterable[str | Path], *, where: str = "--trust") -> dict[str, object]:
    """Read trusted Ed25519 public keys (PEM files, or folders of ``*.pub`` files): ``{fingerprint: key}``.

    Raises
    ------
    ConfigError
        A file is missing or is not an Ed25519 public key (naming it and ``where``), or no key was found.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys: dict[str, object] = {}
    for entry in map(Path, paths):
        if not entry.exists():
            raise ConfigError(f"{where}: {entry}: no such public key file; give the .pub file `cartrisk keygen` wrote")
        for path in _public_key_files(entry):
            try:
                key = _serialization().load_pem_public_key(path.read_bytes())
            except (ValueError, TypeError, OSError) as err:
                hint = " (that is a private key: trust its .pub file)" if b"PRIVATE KEY" in _head(path) else ""
                raise ConfigError(f"{where}: {path}: not a PEM public key{hint} ({err})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"{where}: {path}: a {type(key).__name__}, not an Ed25519 public key")
            keys[key_fingerprint(key)] = key
    if not keys:
        raise ConfigError(f"{where}: no public key found in {', '.join(map(str, paths)) or '(nothing given)'}")
    return keys


def trusted_keys_setting() -> list[Path]:
    """The key files of the trusted-keys setting (:data:`TRUSTED_KEYS_ENV`; empty when it is not set)."""
    value = os.environ.get(TRUSTED_KEYS_ENV, "").strip()
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


def sign_bundle(directory: str | Path, private_key) -> str:
    """Sign a bundle's manifest: write ``SIGNATURE.json``; return the key's fingerprint."""
    directory = Path(directory)
    manifest = (directory / MANIFEST_FILE).read_bytes()
    public = private_key.public_key()
    s = _serialization()
    body = {"format": _FORMAT, "algorithm": "ed25519",
            "public_key": base64.b64encode(public.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)).decode(),
            "key_fingerprint": key_fingerprint(public),
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "signature": base64.b64encode(private_key.sign(_CONTEXT + manifest)).decode()}
    (directory / SIGNATURE_FILE).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return body["key_fingerprint"]


def verify_signature(directory: str | Path, trusted: dict[str, object] | None) -> Signature | None:
    """Check a bundle's signature (after its manifest has been verified).

    Parameters
    ----------
    directory : path
        The bundle folder.
    trusted : dict of fingerprint -> public key, or None
        The trusted keys; None or empty when no trust was asked for.

    Returns
    -------
    Signature or None
        None for an unsigned bundle (accepted only when no trust was asked for).

    Raises
    ------
    BundleError
        A signature that does not match the manifest (whatever ``trusted``); with trusted keys, an unsigned
        bundle or one signed by another key.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    directory = Path(directory)
    where = directory / SIGNATURE_FILE
    if not where.is_file():
        if trusted:
            raise BundleError(f"{directory}: the bundle is unsigned, and --trust (or {TRUSTED_KEYS_ENV}) asks for a "
                              "signature by a trusted key; refused. Ask its author for a bundle exported with "
                              "`cartrisk export --sign KEY`")
        return None
    try:
        body = json.loads(where.read_text(encoding="utf-8"))
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(body["public_key"], validate=True))
        signature = base64.b64decode(body["signature"], validate=True)
        if body.get("algorithm") != "ed25519" or body.get("format") != _FORMAT:
            raise ValueError(f"algorithm {body.get('algorithm')!r}, format {body.get('format')!r}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise BundleError(f"{where}: not a signature cartrisk wrote ({type(err).__name__}: {err}); the bundle was "
                          "altered: refused") from None
    manifest = (directory / MANIFEST_FILE).read_bytes()
    try:
        public.verify(signature, _CONTEXT + manifest)
    except InvalidSignature:
        raise BundleError(f"{where}: the signature does not match {MANIFEST_FILE}: the bundle was altered after it "
                          "was signed; refused. Use the bundle as its author exported it") from None
    fingerprint = key_fingerprint(public)
    if trusted and fingerprint not in trusted:
        known = ", ".join(f[:16] for f in sorted(trusted))
        raise BundleError(f"{directory}: signed by key {fingerprint[:16]}..., which is not a trusted key (trusted: "
                          f"{known}); refused. Trust the author's public key (--trust PUBKEY) if you know it is theirs")
    return Signature(fingerprint, bool(trusted))


def check_fingerprint(value: str, *, where: str = "--expect-fingerprint") -> str:
    """A pinned bundle fingerprint, normalised (64 lower-case hex digits), or a ConfigError naming ``where``."""
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"{where}: {value!r} is not a SHA-256 fingerprint (64 hexadecimal digits, as `cartrisk "
                          "export` and `cartrisk score` print it)")
    return text
