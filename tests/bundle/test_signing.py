"""Signed bundles: the three forgeries of issue 12 are refused with --trust, an unsigned bundle is refused with
--trust and accepted with a warning without it, a pinned fingerprint pins, and skops loads only cartrisk's types.

Each forgery changes a file and rewrites MANIFEST.json to match (so the checksums pass), as someone who wants a
bundle to score differently would. Without a signature nothing could tell; with one, the signature over the
manifest no longer matches, and deleting the signature leaves an unsigned bundle that --trust refuses.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from typer.testing import CliRunner

from cartrisk.bundle import export_bundle, load_bundle
from cartrisk.bundle._format import write_manifest
from cartrisk.bundle.serialise import PIPELINE_FILE, load_pipeline
from cartrisk.bundle.signing import TRUSTED_KEYS_ENV, generate_keypair
from cartrisk.cli import app
from cartrisk.data.schema import to_xy, validate
from cartrisk.data.simulate import simulate
from cartrisk.exceptions import BundleError, ConfigError
from cartrisk.modelling import make_pipeline


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    ours = generate_keypair(root / "lab")
    theirs = generate_keypair(root / "other")
    return {"key": ours[0], "pub": ours[1], "fingerprint": ours[2], "other_key": theirs[0], "other_pub": theirs[1]}


@pytest.fixture(scope="module")
def signed(tmp_path_factory, keys):
    """Signed Cox and XGBoost Cox bundles, and a cohort of new patients (CSV)."""
    root = tmp_path_factory.mktemp("signed")
    typed = validate(simulate(300, 3)[0]).raise_if_invalid()
    X, y = to_xy(typed)
    cox = export_bundle(make_pipeline("infusion+relapse", "coxph").fit(X, y), root / "models", name="cox",
                        training_frame=typed, sign_with=keys["key"])
    xgb = export_bundle(make_pipeline("infusion+relapse", "xgb_cox", n_estimators=30).fit(X, y), root / "models",
                        name="xgb", training_frame=typed, sign_with=keys["key"])
    new = simulate(120, 8)[0].drop(columns=["os2_days", "os2_event", "last_contact_date", "pfs2_days", "pfs2_event"])
    new.to_csv(root / "new.csv", index=False)
    return {"cox": cox, "xgb": xgb, "new": root / "new.csv", "root": root}


def _copy(bundle: Path, tmp_path: Path, name: str = "forged") -> Path:
    target = tmp_path / name
    shutil.copytree(bundle, target)
    return target


def _score(bundle: Path, data: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["score", str(bundle), str(data), "--out", str(out), *extra])


# ------------------------------------------------------------------------------------------------ keys and signing
def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key(tmp_path):
    result = CliRunner().invoke(app, ["keygen", "--out", str(tmp_path / "keys" / "me")])
    assert result.exit_code == 0, result.output
    private, public = tmp_path / "keys" / "me.key", tmp_path / "keys" / "me.pub"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    assert "key fingerprint" in result.output


def test_a_signed_bundle_loads_with_trust_in_its_key(signed, keys):
    bundle = load_bundle(signed["cox"], trust=[keys["pub"]])
    assert bundle.signature is not None and bundle.signature.trusted
    assert bundle.signature.key_fingerprint == keys["fingerprint"]
    assert (signed["cox"] / "SIGNATURE.json").is_file()
    untrusted = load_bundle(signed["cox"])
    assert untrusted.signature is not None and not untrusted.signature.trusted
    folder = keys["pub"].parent  # a folder of .pub files is a list of trusted keys
    assert load_bundle(signed["cox"], trust=[folder]).signature.trusted


def test_a_bundle_signed_by_another_key_is_refused(signed, keys, tmp_path):
    other = export_bundle(load_bundle(signed["cox"]).pipeline, tmp_path, name="other",
                          training_frame=validate(simulate(300, 3)[0]).raise_if_invalid(), sign_with=keys["other_key"])
    with pytest.raises(BundleError, match=r"signed by key [0-9a-f]{16}\.\.\., which is not a trusted key"):
        load_bundle(other, trust=[keys["pub"]])
    assert load_bundle(other, trust=[keys["other_pub"]]).signature.trusted


def test_the_trusted_keys_setting_requires_a_signature(signed, small_bundle, keys, monkeypatch):
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys["pub"]))
    assert load_bundle(signed["cox"]).signature.trusted
    with pytest.raises(BundleError, match="the bundle is unsigned"):
        load_bundle(small_bundle[0])
    assert load_bundle(small_bundle[0], trust=[]).signature is None  # an explicit empty list asks for no trust


def test_a_bad_signing_key_is_refused_before_anything_is_written(signed, keys, tmp_path):
    pipeline = load_bundle(signed["cox"]).pipeline
    with pytest.raises(ConfigError, match=r"--sign: .*lab\.pub: not an unencrypted PEM private key \(that is the "
                                          r"public key"):
        export_bundle(pipeline, tmp_path / "models", name="m", X=pd.DataFrame({"a": [1.0]}), y=None,
                      sign_with=keys["pub"])
    assert not (tmp_path / "models").exists()


# ------------------------------------------------------------------------------------------------ the three forgeries
def _forge_cut_points(bundle: Path) -> None:
    path = bundle / "risk_groups.json"
    groups = json.loads(path.read_text())
    groups["cutpoints"] = [-100.0] * len(groups["cutpoints"])  # every patient "high"
    path.write_text(json.dumps(groups))
    write_manifest(bundle)


def _forge_booster(bundle: Path) -> None:
    path = bundle / "booster.json"
    model = json.loads(path.read_text())
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for i, left in enumerate(tree["left_children"]):
            if left == -1:  # a leaf: its value is in split_conditions (and base_weights)
                tree["split_conditions"][i] = -tree["split_conditions"][i]
                tree["base_weights"][i] = -tree["base_weights"][i]
    path.write_text(json.dumps(model))
    write_manifest(bundle)


def _forge_pipeline(bundle: Path) -> None:
    pipeline = load_pipeline(bundle / PIPELINE_FILE)
    pipeline.steps.insert(1, ("negate", FunctionTransformer(np.negative)))  # every feature's sign flipped
    sio.dump(pipeline, bundle / PIPELINE_FILE)
    write_manifest(bundle)


FORGERIES = {"cut-point -100": ("cox", _forge_cut_points), "sign-flipped leaves": ("xgb", _forge_booster),
             "FunctionTransformer(np.negative)": ("cox", _forge_pipeline)}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_each_forgery_is_refused_with_trust(forgery, signed, keys, tmp_path):
    family, forge = FORGERIES[forgery]
    bundle = _copy(signed[family], tmp_path)
    forge(bundle)
    result = _score(bundle, signed["new"], tmp_path / "scored.csv", "--trust", str(keys["pub"]))
    assert result.exit_code == 2, result.output
    assert "SIGNATURE.json: the signature does not match MANIFEST.json: the bundle was altered after it was signed" \
        in _text(result)
    (bundle / "SIGNATURE.json").unlink()  # the forger removes the signature that gives them away
    result = _score(bundle, signed["new"], tmp_path / "scored.csv", "--trust", str(keys["pub"]))
    assert result.exit_code == 2 and "the bundle is unsigned, and --trust" in _text(result)
    for command in (["compare-rules", "--model", str(bundle), "--data", str(signed["new"]), "--out",
                     str(tmp_path / "cmp")],
                    ["explain", "--model", str(bundle), "--data", str(signed["new"]), "--out", str(tmp_path / "exp")]):
        refused = CliRunner().invoke(app, [*command, "--trust", str(keys["pub"])])
        assert refused.exit_code == 2 and "the bundle is unsigned, and --trust" in _text(refused), command
    assert not (tmp_path / "scored.csv").exists() and not (tmp_path / "cmp").exists()


@pytest.mark.filterwarnings("ignore::cartrisk.exceptions.StatisticalWarning")
def test_without_trust_the_forgeries_would_have_changed_the_scores(signed, tmp_path):
    """What the signature protects against: unsigned, the first two forgeries load and change every result."""
    new = pd.read_csv(signed["new"])
    honest = load_bundle(signed["cox"]).score(new)
    cut = _copy(signed["cox"], tmp_path, "cut")
    _forge_cut_points(cut)
    (cut / "SIGNATURE.json").unlink()
    assert (load_bundle(cut).score(new)["risk_group"] == "high").all()
    assert (honest["risk_group"] == "low").any()
    flipped = _copy(signed["xgb"], tmp_path, "flipped")
    _forge_booster(flipped)
    (flipped / "SIGNATURE.json").unlink()
    before = load_bundle(signed["xgb"]).score(new)["risk_score"]
    after = load_bundle(flipped).score(new)["risk_score"]
    assert np.corrcoef(before, after)[0, 1] < -0.9


def test_a_signature_that_does_not_match_is_refused_even_without_trust(signed, tmp_path):
    bundle = _copy(signed["cox"], tmp_path)
    _forge_cut_points(bundle)
    with pytest.raises(BundleError, match="the signature does not match MANIFEST.json"):
        load_bundle(bundle)


def test_the_skops_allow_list_is_cartrisks_only(signed, tmp_path):
    """skops trusts FunctionTransformer (and numpy's functions) by default; cartrisk does not."""
    bundle = _copy(signed["cox"], tmp_path)
    _forge_pipeline(bundle)
    (bundle / "SIGNATURE.json").unlink()
    with pytest.raises(BundleError, match=r"pipeline\.skops holds function\(s\) or method\(s\) numpy\.negative"):
        load_bundle(bundle)
    skops_would_ask = set(sio.get_untrusted_types(file=bundle / PIPELINE_FILE))
    assert not skops_would_ask & {"numpy.negative", "sklearn.preprocessing._function_transformer.FunctionTransformer"}
    plain = tmp_path / "plain.skops"
    sio.dump(Pipeline([("scale", StandardScaler()), ("f", FunctionTransformer())]), plain)
    with pytest.raises(BundleError, match=r"not on cartrisk's allow-list: "
                                          r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer"):
        load_pipeline(plain)


# ------------------------------------------------------------------------------------------------ unsigned, pinned
def test_an_unsigned_bundle_is_refused_with_trust_and_accepted_with_a_warning_without(small_bundle, keys, signed,
                                                                                        tmp_path):
    bundle = small_bundle[0]
    refused = _score(bundle, signed["new"], tmp_path / "a.csv", "--trust", str(keys["pub"]))
    assert refused.exit_code == 2 and "the bundle is unsigned" in _text(refused)
    assert not (tmp_path / "a.csv").exists()
    accepted = _score(bundle, signed["new"], tmp_path / "b.csv")
    assert accepted.exit_code == 0, accepted.output
    assert f"warning: bundle {bundle} is unsigned" in _text(accepted)
    assert len(pd.read_csv(tmp_path / "b.csv")) == 120
    trusted = _score(signed["cox"], signed["new"], tmp_path / "c.csv", "--trust", str(keys["pub"]))
    assert trusted.exit_code == 0 and "signed by trusted key" in _text(trusted) and "is unsigned" not in _text(trusted)


def test_expect_fingerprint_pins_a_bundle(signed, tmp_path):
    right = load_bundle(signed["cox"]).fingerprint
    ok = _score(signed["cox"], signed["new"], tmp_path / "a.csv", "--expect-fingerprint", right.upper())
    assert ok.exit_code == 0, ok.output
    other = load_bundle(signed["xgb"]).fingerprint
    refused = _score(signed["cox"], signed["new"], tmp_path / "b.csv", "--expect-fingerprint", other)
    assert refused.exit_code == 2 and f"is not the expected {other} (--expect-fingerprint)" in _text(refused)
    with pytest.raises(BundleError, match="is not the expected"):
        load_bundle(signed["cox"], expect_fingerprint=other)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupted_booster_is_exit_2_naming_the_file(damage, signed, tmp_path):
    bundle = _copy(signed["xgb"], tmp_path)
    booster = bundle / "booster.json"
    text = booster.read_text()
    booster.write_text("not a model" if damage == "garbage" else text[: len(text) // 2])
    write_manifest(bundle)
    (bundle / "SIGNATURE.json").unlink()
    result = _score(bundle, signed["new"], tmp_path / "s.csv")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{booster}: not an XGBoost model file XGBoost can read" in _text(result)


def test_export_signs_and_score_trusts_end_to_end(tmp_path, keys, signed, monkeypatch):
    """``cartrisk export --sign KEY`` on a model run of ``cartrisk evaluate``, then ``score --trust PUBKEY``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.toml").write_text('name = "e"\n[data]\nn = 300\n[features]\nset = "infusion"\n[[models]]\n'
                                     'estimator = "coxph"\n[evaluation]\nn_splits = 2\nrules = ["d0_30"]\n')
    runner = CliRunner()
    assert runner.invoke(app, ["evaluate", "e.toml"]).exit_code == 0
    from cartrisk.tracking import Tracker

    tracker = Tracker("sqlite:///mlruns/mlflow.db", "e")
    (run,) = tracker.client.search_runs([tracker.experiment_id], "tags.`cartrisk.kind` = 'model'")
    exported = runner.invoke(app, ["export", "--run", run.info.run_id, "--name", "m", "--sign", str(keys["key"])])
    assert exported.exit_code == 0, exported.output
    assert f"signed by key {keys['fingerprint']}" in _text(exported)
    scored = _score(tmp_path / "models" / "m", signed["new"], tmp_path / "s.csv", "--trust", str(keys["pub"]))
    assert scored.exit_code == 0, scored.output
    assert "signed by trusted key" in _text(scored)


def test_validate_and_update_model_take_the_trust_options(signed, keys, tmp_path):
    """validate-model and update-model load the bundle through the same trust check as score."""
    outcome = simulate(300, 9)[0]
    outcome.to_csv(tmp_path / "site.csv", index=False)
    unsigned = _copy(signed["cox"], tmp_path, "unsigned")
    (unsigned / "SIGNATURE.json").unlink()
    runner = CliRunner()
    validate = ["validate-model", str(unsigned), "--data", str(tmp_path / "site.csv"), "--horizon", "6", "--n-boot",
                "20", "--no-subgroups", "--out", str(tmp_path / "val")]
    refused = runner.invoke(app, [*validate, "--trust", str(keys["pub"])])
    assert refused.exit_code == 2 and "unsigned" in _text(refused) and not (tmp_path / "val").exists()
    update = ["update-model", str(unsigned), "--data", str(tmp_path / "site.csv"), "--method", "intercept",
              "--name", "cox-site", "--models-dir", str(tmp_path / "models")]
    refused = runner.invoke(app, [*update, "--trust", str(keys["pub"])])
    assert refused.exit_code == 2 and "unsigned" in _text(refused) and not (tmp_path / "models").exists()
    trusted = runner.invoke(app, [*validate[:1], str(signed["cox"]), *validate[2:], "--trust", str(keys["pub"])])
    assert trusted.exit_code == 0, trusted.output
    assert "signed by trusted key" in _text(trusted)
