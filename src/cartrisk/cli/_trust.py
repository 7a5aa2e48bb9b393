"""What every command that loads a bundle shares: ``--trust PUBKEY``, ``--expect-fingerprint SHA256`` and the one
place that loads a bundle with them and says how far it can be trusted.

Add the two options to a command with the annotated types below and load through :func:`open_bundle`::

    @app.command()
    @user_errors
    def mycommand(bundle_dir: Path, trust: TrustOption = None, expect_fingerprint: FingerprintOption = None):
        bundle = open_bundle(bundle_dir, trust, expect_fingerprint)

Without ``--trust`` (and without the trusted-keys setting ``CARTRISK_TRUSTED_KEYS``) an unsigned bundle is
accepted with a warning on stderr; with it, only a bundle signed by one of the trusted keys is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cartrisk.cli._app import err_console
from cartrisk.exceptions import ConfigError

__all__ = ["FingerprintOption", "TrustOption", "check_trust_options", "open_bundle", "refuse_trust_for_runs"]

TrustOption = Annotated[list[Path] | None, typer.Option(
    "--trust", metavar="PUBKEY",
    help="Trusted public key (.pub file from `cartrisk keygen`, or a folder of them; repeatable): the bundle must be "
         "signed by one of them. Default: the CARTRISK_TRUSTED_KEYS setting, else unsigned bundles are accepted "
         "with a warning.")]
FingerprintOption = Annotated[str | None, typer.Option(
    "--expect-fingerprint", metavar="SHA256",
    help="Refuse any bundle but the one with this fingerprint (SHA-256 of its manifest, as `cartrisk export` prints "
         "it).")]


def check_trust_options(trust: list[Path] | None, expect_fingerprint: str | None) -> None:
    """Read the trusted keys and check the fingerprint's form before any work (errors name the option)."""
    from cartrisk.bundle.signing import check_fingerprint, load_trusted_keys

    if trust:
        load_trusted_keys(trust)
    if expect_fingerprint is not None:
        check_fingerprint(expect_fingerprint)


def refuse_trust_for_runs(model: str, trust: list[Path] | None, expect_fingerprint: str | None) -> None:
    """``--trust`` and ``--expect-fingerprint`` check a bundle folder; refuse them for a model that is not one."""
    if (trust or expect_fingerprint) and not Path(model).is_dir():
        option = "--trust" if trust else "--expect-fingerprint"
        raise ConfigError(f"{option} checks a bundle folder, but --model {model} is not one (an MLflow run or a .skops "
                          "file carries no signature); export the model with `cartrisk export --sign KEY` and give "
                          "the bundle folder")


def open_bundle(path: str | Path, trust: list[Path] | None = None, expect_fingerprint: str | None = None):
    """:func:`cartrisk.bundle.load_bundle` with the options' values; say on stderr who signed it, or warn that
    nobody did."""
    from cartrisk.bundle import load_bundle

    bundle = load_bundle(path, trust=trust or None, expect_fingerprint=expect_fingerprint)
    signature = bundle.signature
    if signature is None:
        err_console.print(f"warning: bundle {path} is unsigned: nothing shows who made it or that it was not altered "
                          "together with its manifest. Pass --trust PUBKEY to accept only bundles signed by a key you "
                          "trust", highlight=False, markup=False, soft_wrap=True)
    elif signature.trusted:
        err_console.print(f"bundle {path} is signed by trusted key {signature.key_fingerprint[:16]}", highlight=False,
                          markup=False)
    else:
        err_console.print(f"note: bundle {path} is signed by key {signature.key_fingerprint[:16]}, not checked "
                          "against a trusted key (pass --trust PUBKEY to require it)", highlight=False, markup=False,
                          soft_wrap=True)
    return bundle
