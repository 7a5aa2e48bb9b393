"""A model's calibrated risk groups against the D0-30 rule, its three-window form and the PC-PI, end to end.

:func:`compare_with_rules` is the workflow behind ``cartrisk compare-rules``. What is learned
is learned on the training cohort only: the rules' group survival curves, the model's group
cut-points and the :class:`~cartrisk.groups.Recalibrator`, the latter two from
*out-of-fold* training predictions (given, e.g. ``cross_validate_survival(...).oof_risk``, or
cross-validated here), because in-sample predictions of a flexible model are optimistic and
would put the cut-points and the calibration in the wrong place. Everything is then evaluated
on the test patients: discrimination, hazard ratios, log-rank, medians, paired bootstrap C
differences, reclassification, NRI, decision curve and group calibration before and after
recalibration (:class:`RuleComparison`). Times are days in arguments, months in tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from cartrisk.evaluation import EventStratifiedKFold, check_horizons, cross_validate_survival, seed_estimator
from cartrisk.exceptions import ConfigError, SchemaError
from cartrisk.groups.compare import GroupComparison, compare_groupings
from cartrisk.groups.grouper import RiskGrouper
from cartrisk.groups.recalibration import Recalibrator, calibration_before_after, group_calibration
from cartrisk.modelling.rules import RULES, make_rule
from cartrisk.progress import Progress
from cartrisk.units import DEFAULT_HORIZONS_MONTHS, months_to_days

__all__ = ["ComparisonSettings", "GroupSpec", "RuleComparison", "compare_with_rules", "grouping_title",
           "model_grouping_name", "parse_groups"]

#: Name of the model's continuous risk score in the comparison tables.
MODEL_SCORE = "model score"


@dataclass(frozen=True)
class GroupSpec:
    """How the model's risk groups are formed (see :func:`parse_groups`)."""

    kind: str
    n_groups: int | None = None
    threshold: float | None = None
    horizon_months: float | None = None

    def __str__(self) -> str:
        if self.kind == "rule-sized":
            return "rule-sized"
        if self.kind == "n_groups":
            return str(self.n_groups)
        cuts = ",".join(f"{c:g}" for c in np.atleast_1d(self.threshold))
        return f"threshold:{cuts}@{self.horizon_months:g}"


def parse_groups(spec: str | GroupSpec) -> GroupSpec:
    """Read a group specification.

    ``"rule-sized"``: quantile groups of the model's risk score with the shares of each rule's
    groups on the training set (the top share equal to the D0-30 share for the D0-30 rule;
    >D90 / D31-90 / D0-30 shares for the three-window rule; the PC-PI's four shares).
    ``"3"`` (any integer >= 2): that many equal-sized groups. ``"threshold:0.25@6"``: predicted
    OS-2 at 6 months below 25% is high risk (several thresholds: ``"threshold:0.25,0.5@6"``).

    Raises
    ------
    ConfigError
        For anything else, with the accepted forms in the message.
    """
    if isinstance(spec, GroupSpec):
        return spec
    text = str(spec).strip()
    usage = "use 'rule-sized', a number of equal groups such as '3', or 'threshold:0.25@6' (6-month OS-2 below 25%)"
    if text == "rule-sized":
        return GroupSpec("rule-sized")
    if text.isdigit():
        if int(text) < 2:
            raise ConfigError(f"groups {text!r}: at least 2 groups are needed; {usage}")
        return GroupSpec("n_groups", n_groups=int(text))
    if text.startswith("threshold:") and text.count("@") == 1:
        cuts, horizon = text.removeprefix("threshold:").split("@")
        try:
            values = tuple(float(c) for c in cuts.split(","))
            months = float(horizon)
        except ValueError:
            raise ConfigError(f"groups {text!r}: thresholds and horizon must be numbers; {usage}") from None
        if any(not 0 < v < 1 for v in values) or months <= 0:
            raise ConfigError(f"groups {text!r}: thresholds must lie in (0, 1) and the horizon be positive; {usage}")
        return GroupSpec("threshold", threshold=values[0] if len(values) == 1 else values, horizon_months=months)
    raise ConfigError(f"groups {text!r} not understood; {usage}")


def model_grouping_name(spec: GroupSpec, rule: str | None = None) -> str:
    """Name of a model grouping in the tables: ``model[d0_30]``, ``model[3 groups]``, ``model[S(6m)<0.25]``."""
    if spec.kind == "rule-sized":
        return f"model[{rule}]"
    if spec.kind == "n_groups":
        return f"model[{spec.n_groups} groups]"
    cuts = ",".join(f"{c:g}" for c in np.atleast_1d(spec.threshold))
    return f"model[S({spec.horizon_months:g}m)<{cuts}]"


def grouping_title(name: str) -> str:
    """A grouping's name for people: ``d0_30`` -> "D0-30 rule", ``model[d0_30]`` -> "model, groups sized like the
    D0-30 rule", ``model[3 groups]`` -> "model, 3 groups"; other names are returned as they are."""
    if name in RULES:
        return RULES[name].title or name
    inner = name[6:-1] if name.startswith("model[") and name.endswith("]") else None
    if inner is None:
        return name
    if inner in RULES:
        return f"model, groups sized like the {RULES[inner].title or inner}"
    return f"model, {inner}"


@dataclass(frozen=True)
class RuleComparison:
    """A model's risk groups against reference rules on the same test patients.

    Attributes
    ----------
    comparison : GroupComparison
        The statistics on the test patients (:func:`cartrisk.groups.compare_groupings`):
        discrimination, groups, hazard ratios, C differences, reclassification, NRI, decision curve.
    calibration : DataFrame
        Group calibration on the test patients: ``grouping, stage, group, horizon_months, n,
        events, events_by_horizon, observed, observed_lower, observed_upper, predicted,
        difference``; ``stage`` is "before" / "after" (recalibration) for the model's groupings and
        "rule KM" for a rule (its training Kaplan-Meier curve per group as the prediction).
    pairs : tuple of (str, str)
        (model grouping, rule) pairs that were compared.
    patients : DataFrame
        One row per test patient: ``os2_days``, ``os2_event``, ``model_risk``, predicted survival
        ``surv_<h>m`` (and ``recalibrated_<h>m``), and each grouping's group (ordered Categorical).
    groupers : dict of str -> RiskGrouper
        The fitted cut-points of each model grouping.
    rules : dict of str -> fitted rule
    recalibrator : Recalibrator or None
    settings : dict
        Groups, horizons, sizes, seeds and where the training predictions came from.
    notes : tuple of str
        What the reader should know (rules left out, optimistic parts).
    """

    comparison: GroupComparison
    calibration: pd.DataFrame
    pairs: tuple[tuple[str, str], ...]
    patients: pd.DataFrame
    groupers: dict[str, RiskGrouper]
    rules: dict[str, object]
    recalibrator: Recalibrator | None
    settings: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def horizon_months(self) -> float:
        return self.comparison.horizon_months

    def summary(self) -> pd.DataFrame:
        """One row per rule and per model grouping / score compared with it.

        Columns: ``rule, grouping, kind`` ("rule", "model groups", "model score"), ``n_groups``,
        ``harrell_c, uno_c, td_auc`` (at the horizon), ``hr_top, hr_top_lower, hr_top_upper``
        (highest vs lowest group), ``logrank_p``, ``c_difference`` with ``lower``/``upper`` (against
        the rule, paired bootstrap) and ``nri`` at the horizon.
        """
        cmp = self.comparison
        disc = cmp.discrimination.set_index("grouping")
        hr = cmp.hazard_ratios[cmp.hazard_ratios["contrast"] == "vs lowest"].groupby("grouping").tail(1)
        hr = hr.set_index("grouping")
        cdiff = cmp.c_differences.set_index(["grouping", "reference"])
        nri = cmp.nri.set_index(["grouping", "reference"]) if not cmp.nri.empty else None
        rows = []
        for rule in self.rules:
            entries = [(rule, "rule")] + [(a, "model groups") for a, b in self.pairs if b == rule and a != MODEL_SCORE]
            entries.append((MODEL_SCORE, "model score"))
            for name, kind in entries:
                d = disc.loc[name]
                row = {"rule": rule, "grouping": name, "kind": kind, "n_groups": d["n_groups"],
                       "harrell_c": d["harrell_c"], "uno_c": d["uno_c"], "td_auc": d["td_auc"],
                       "hr_top": np.nan, "hr_top_lower": np.nan, "hr_top_upper": np.nan, "logrank_p": d["logrank_p"],
                       "c_difference": np.nan, "c_difference_lower": np.nan, "c_difference_upper": np.nan,
                       "nri": np.nan}
                if name in hr.index:
                    row |= {"hr_top": hr.loc[name, "hr"], "hr_top_lower": hr.loc[name, "hr_lower"],
                            "hr_top_upper": hr.loc[name, "hr_upper"]}
                if (name, rule) in cdiff.index:
                    c = cdiff.loc[(name, rule)]
                    row |= {"c_difference": c["difference"], "c_difference_lower": c["lower"],
                            "c_difference_upper": c["upper"]}
                if nri is not None and (name, rule) in nri.index:
                    row["nri"] = nri.loc[(name, rule), "nri"]
                rows.append(row)
        return pd.DataFrame(rows)

    def group_calibration(self, grouping: str, stage: str | None = None, horizon_months: float | None = None
                          ) -> pd.DataFrame:
        """Rows of :attr:`calibration` for one grouping (optionally one stage and horizon)."""
        cal = self.calibration[self.calibration["grouping"] == grouping]
        if cal.empty:
            known = list(self.calibration["grouping"].unique())
            raise ValueError(f"no calibration rows for {grouping!r}; groupings: {known}")
        if stage is not None:
            cal = cal[cal["stage"] == stage]
        if horizon_months is not None:
            cal = cal[np.isclose(cal["horizon_months"], horizon_months)]
        return cal

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every result table by name (for CSV export and MLflow)."""
        cmp = self.comparison
        out = {"summary": self.summary(), "discrimination": cmp.discrimination, "groups": cmp.groups,
               "hazard_ratios": cmp.hazard_ratios, "c_differences": cmp.c_differences,
               "reclassification": cmp.reclassification, "nri": cmp.nri, "calibration": self.calibration}
        if cmp.decision_curve is not None:
            out["decision_curve"] = cmp.decision_curve
        return out


# --------------------------------------------------------------------------- helpers
def _is_fitted(estimator) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:  # not an estimator scikit-learn can inspect: trust the caller
        return True
    return True


def _seed(random_state) -> int | None:
    if random_state is None or isinstance(random_state, int | np.integer):
        return None if random_state is None else int(random_state)
    return int(np.random.default_rng(random_state).integers(2**31 - 1))


def _rule_groups(rule, X) -> pd.Categorical:
    return pd.Categorical(rule.predict_group(X), categories=list(rule.group_labels), ordered=True)


def _oof_survival(oof_survival, horizons: np.ndarray, n: int) -> np.ndarray:
    if isinstance(oof_survival, pd.DataFrame):
        cols = np.asarray(oof_survival.columns, dtype=float)
        idx = [np.flatnonzero(np.isclose(cols, h)) for h in horizons]
        if any(i.size == 0 for i in idx):
            raise ValueError(f"oof_survival has columns {list(oof_survival.columns)}, expected the horizons "
                             f"{list(horizons)} (months)")
        surv = oof_survival.to_numpy(dtype=float)[:, [i[0] for i in idx]]
    else:
        surv = np.asarray(oof_survival, dtype=float)
    if surv.shape != (n, len(horizons)) or np.isnan(surv).any():
        raise ValueError(f"oof_survival must hold the {n} training patients' predicted survival at "
                         f"{len(horizons)} horizons without NaN, got shape {surv.shape}")
    return surv


def _usable_rules(rules: Sequence[str], frames) -> tuple[dict[str, object], list[str]]:
    usable, notes = {}, []
    for name in rules:
        if name not in RULES:
            raise ConfigError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}")
        rule = make_rule(name)
        missing = sorted({c for X in frames if X is not None for c in rule.needs if c not in X})
        if missing:
            notes.append(f"rule {name} left out: the data lack {', '.join(missing)}")
            continue
        usable[name] = rule
    if not usable:
        raise SchemaError("no reference rule can be computed on these data: " + "; ".join(notes))
    return usable, notes


def _make_groupers(spec: GroupSpec, rules: dict, X_train, risk, surv_h: np.ndarray | None
                   ) -> dict[str, tuple[RiskGrouper, str | None]]:
    """Fitted groupers by grouping name, with the rule each one is paired with (None: all rules)."""
    if spec.kind == "n_groups":
        return {model_grouping_name(spec): (RiskGrouper(method="n_groups", n_groups=spec.n_groups).fit(risk), None)}
    if spec.kind == "threshold":
        g = RiskGrouper(method="threshold", threshold=spec.threshold, horizon_months=spec.horizon_months)
        return {model_grouping_name(spec): (g.fit(surv_at_horizon=surv_h), None)}
    out = {}
    for name, rule in rules.items():
        counts = pd.Series(rule.predict_group(X_train)).value_counts()
        shares = np.array([counts.get(lab, 0) for lab in rule.group_labels], dtype=float) / len(X_train)
        shares = shares[shares > 0]
        if len(shares) < 2:
            raise ValueError(f"rule {name} puts every training patient in one group: no group sizes to match")
        out[model_grouping_name(spec, name)] = (RiskGrouper(sizes=shares).fit(risk), name)
    return out


def _test_groups(grouper: RiskGrouper, risk, surv_h) -> pd.Categorical:
    return grouper.predict(surv_at_horizon=surv_h) if grouper.method == "threshold" else grouper.predict(risk)


def _fitted_model(pipeline, X_train, y_train, seed: int | None):
    """The pipeline as given when fitted (a bundle), else a clone fitted on the training cohort."""
    if _is_fitted(pipeline):
        return pipeline
    if X_train is None or y_train is None:
        raise ValueError("the pipeline is not fitted and no training cohort was given")
    model = clone(pipeline)
    if seed is not None:
        seed_estimator(model, seed)
    return model.fit(X_train, y_train)


def _training_predictions(pipeline, X_train, y_train, horizons, oof_risk, oof_survival, *, need_survival: bool,
                          recalibrate: bool, cv: int, seed: int | None, progress):
    """Out-of-fold training risk and survival (given or cross-validated), and the recalibrator fitted on them.

    Returns ``(oof_risk, oof_survival_used, recalibrator, source)``; the survival is recalibrated when asked.
    """
    source = "given"
    if oof_risk is None or (need_survival and oof_survival is None):
        step = None if progress is None else (lambda done, total: progress("training predictions", done, total))
        res = cross_validate_survival(pipeline, X_train, y_train, horizons_months=horizons, calibration=False,
                                      cv=EventStratifiedKFold(n_splits=cv, random_state=seed), random_state=seed,
                                      progress=step)
        oof_risk, oof_survival, source = res.oof_risk, res.oof_survival, f"{cv}-fold cross-validation"
    oof_risk = np.asarray(oof_risk, dtype=float)
    if oof_risk.shape != (len(y_train),) or not np.isfinite(oof_risk).all():
        raise ValueError(f"oof_risk must hold the {len(y_train)} training patients' risk scores, got shape "
                         f"{oof_risk.shape}")
    if not need_survival:
        return oof_risk, None, None, source
    oof_surv = _oof_survival(oof_survival, horizons, len(y_train))
    recalibrator = None
    if recalibrate:
        recalibrator = Recalibrator(horizons_months=tuple(horizons.tolist())).fit(oof_surv, y_train)
        oof_surv = recalibrator.transform(oof_surv)
    return oof_risk, oof_surv, recalibrator, source


# --------------------------------------------------------------------------- the workflow
@dataclass(frozen=True)
class ComparisonSettings:
    """How :func:`compare_with_rules` compares (every field has the default of ``cartrisk compare-rules``).

    Attributes
    ----------
    groups : str or GroupSpec
        ``"rule-sized"``, ``"3"`` or ``"threshold:0.25@6"`` (:func:`parse_groups`).
    rules : sequence of str
        Reference rules (:data:`cartrisk.modelling.rules.RULES`); a rule whose columns the data lack is
        left out with a note.
    horizons_months : sequence of float
        Horizons of group calibration and recalibration.
    horizon_months : float
        Horizon of the AUC, KM read-outs, reclassification, NRI and decision curve (one of
        ``horizons_months``).
    recalibrate : bool
        Fit a :class:`Recalibrator` on the out-of-fold training predictions and report group
        calibration after it (and use recalibrated survival for thresholds and the decision curve).
    cv : int
        Folds of the cross-validation that gives out-of-fold training predictions when none are given.
    n_boot : int
        Bootstrap resamples of the C differences (shared by all pairs).
    thresholds : sequence of float, optional
        Decision-curve thresholds (default 0.05 ... 0.95).
    conf_level : float
    random_state : int, Generator or None
        Seeds the folds, the model's unset seeds and the bootstrap.
    """

    groups: str | GroupSpec = "rule-sized"
    rules: Sequence[str] = ("d0_30", "d0_30_90", "pcpi")
    horizons_months: Sequence[float] = DEFAULT_HORIZONS_MONTHS
    horizon_months: float = 6.0
    recalibrate: bool = True
    cv: int = 5
    n_boot: int = 1000
    thresholds: Sequence[float] | None = None
    conf_level: float = 0.95
    random_state: int | np.random.Generator | None = None


def _check_horizons(settings: ComparisonSettings, spec: GroupSpec) -> np.ndarray:
    horizons = np.asarray(settings.horizons_months, dtype=float)
    if horizons.ndim != 1 or horizons.size == 0 or horizons[0] <= 0 or np.any(np.diff(horizons) <= 0):
        raise ValueError("horizons_months must be positive and strictly increasing, got "
                         f"{tuple(settings.horizons_months)}")
    asked = ((settings.horizon_months, "horizon_months"), (spec.horizon_months, f"the horizon of groups={spec}"))
    for h, what in asked:
        if h is not None and not np.isclose(horizons, h).any():
            raise ValueError(f"{what} ({h:g} months) must be one of horizons_months {tuple(horizons.tolist())}")
    return horizons


def _model_groupings(fitted, horizons, risk, surv_used, rule_models) -> tuple[dict, list]:
    """Each model grouping's test groups, and the (model grouping, rule) pairs to compare."""
    groupings, pairs = {}, []
    for name, (grouper, paired) in fitted.items():
        horizon_col = None if grouper.method != "threshold" else int(
            np.flatnonzero(np.isclose(horizons, grouper.horizon_months))[0])
        groupings[name] = _test_groups(grouper, risk, None if horizon_col is None else surv_used[:, horizon_col])
        pairs += [(name, r) for r in rule_models if paired in (None, r)]
    pairs += [(MODEL_SCORE, r) for r in rule_models]
    return groupings, pairs


def _given_groupers(groupers: Mapping[str, RiskGrouper], horizons: np.ndarray) -> dict:
    for name, g in groupers.items():
        if g.method == "threshold" and not np.isclose(horizons, g.horizon_months).any():
            raise ValueError(f"grouper {name!r} thresholds survival at {g.horizon_months:g} months, which is not "
                             f"one of horizons_months {tuple(horizons.tolist())}")
    return {name: (g, None) for name, g in groupers.items()}


def _patients_table(y_test, X_test, risk, surv, surv_used, recalibrated: bool, horizons, groupings) -> pd.DataFrame:
    patients = pd.DataFrame({"os2_days": y_test["os2_days"], "os2_event": y_test["os2_event"], "model_risk": risk},
                            index=X_test.index if isinstance(X_test, pd.DataFrame) else None)
    for j, h in enumerate(horizons):
        patients[f"surv_{h:g}m"] = surv[:, j]
        if recalibrated:
            patients[f"recalibrated_{h:g}m"] = surv_used[:, j]
    for name, g in groupings.items():
        patients[name] = g
    return patients


def compare_with_rules(
    pipeline,
    X_train,
    y_train,
    X_test,
    y_test,
    settings: ComparisonSettings | None = None,
    *,
    oof_risk=None,
    oof_survival=None,
    groupers: Mapping[str, RiskGrouper] | None = None,
    progress: Progress | None = None,
) -> RuleComparison:
    """Compare a model's risk groups with reference rules; learn on the training set, evaluate on the test set.

    Parameters
    ----------
    pipeline : survival pipeline or estimator
        ``predict`` (risk) and ``predict_survival_at``; fitted on ``X_train`` here unless already
        fitted (an exported bundle).
    X_train, y_train : DataFrame and structured array, or None
        The training cohort: the rules' group curves, and (from out-of-fold predictions) the
        cut-points and the recalibration are learned on it. May be None only with ``groupers``
        and ``recalibrate=False``; the rules then learn their curves on the test set (noted).
    X_test, y_test : DataFrame and structured array
        The patients everything is evaluated on.
    settings : ComparisonSettings, optional
        Groups, rules, horizons, recalibration, folds, bootstrap and seed (defaults as the command's).
    oof_risk, oof_survival : array-like, optional
        Out-of-fold training predictions (risk; survival at ``horizons_months``, e.g. a
        ``CVResult.oof_survival`` frame). Computed with ``settings.cv`` event-stratified folds when missing.
    groupers : mapping of name -> fitted RiskGrouper, optional
        Cut-points learned before (an exported bundle's); each is compared with every rule.
    progress : callable(stage, done, total), optional

    Returns
    -------
    RuleComparison
    """
    settings = settings or ComparisonSettings()
    spec = parse_groups(settings.groups)
    horizons = _check_horizons(settings, spec)
    horizon_months, recalibrate = settings.horizon_months, settings.recalibrate
    have_train = X_train is not None and y_train is not None
    if not have_train and (groupers is None or recalibrate):
        raise ValueError("a training cohort (X_train, y_train) is needed to learn the cut-points and the "
                         "recalibration; without one pass fitted groupers and recalibrate=False")
    hdays = months_to_days(horizons)
    check_horizons(hdays, y_test, y_train if have_train else None, require_events=True)
    seed = _seed(settings.random_state)
    rule_models, notes = _usable_rules(settings.rules, [X_train, X_test])
    for rule in rule_models.values():
        rule.fit(*((X_train, y_train) if have_train else (X_test, y_test)))
    if not have_train:
        notes.append("no training cohort: the rules' group survival was learned on the test patients, so their "
                     "calibration and decision curve are optimistic")
    model = _fitted_model(pipeline, X_train, y_train, seed)
    h_index = int(np.flatnonzero(np.isclose(horizons, horizon_months))[0])
    oof_surv, recalibrator, source = None, None, "none"
    if have_train and (groupers is None or recalibrate):
        oof_risk, oof_surv, recalibrator, source = _training_predictions(
            pipeline, X_train, y_train, horizons, oof_risk, oof_survival,
            need_survival=recalibrate or spec.kind == "threshold", recalibrate=recalibrate, cv=settings.cv, seed=seed,
            progress=progress)
    risk = np.asarray(model.predict(X_test), dtype=float)
    surv = np.asarray(model.predict_survival_at(X_test, hdays), dtype=float)
    surv_used = surv if recalibrator is None else recalibrator.transform(surv)

    if groupers is None:
        spec_h = None if spec.horizon_months is None else np.flatnonzero(np.isclose(horizons, spec.horizon_months))[0]
        fitted = _make_groupers(spec, rule_models, X_train, oof_risk, None if spec_h is None else oof_surv[:, spec_h])
    else:
        fitted = _given_groupers(groupers, horizons)
        notes.append("cut-points given (learned before), not learned here")
    model_groups, pairs = _model_groupings(fitted, horizons, risk, surv_used, rule_models)
    groupings = {name: _rule_groups(rule, X_test) for name, rule in rule_models.items()} | model_groups
    scores = {name: rule.predict(X_test) for name, rule in rule_models.items()}
    mortality = {"model": 1.0 - surv_used[:, h_index]}
    mortality |= {name: 1.0 - rule.predict_survival_at(X_test, [hdays[h_index]])[:, 0]
                  for name, rule in rule_models.items()}
    comparison = compare_groupings(
        y_test, groupings, scores, y_train if have_train else None, continuous={MODEL_SCORE: risk}, pairs=pairs,
        horizon_months=horizon_months, tau_months=float(horizons[-1]), mortality=mortality,
        thresholds=settings.thresholds, n_boot=settings.n_boot, conf_level=settings.conf_level, random_state=seed,
    )
    calibration = _calibration_table(y_test, X_test, groupings, fitted, rule_models, surv, recalibrator, horizons,
                                     settings.conf_level)
    patients = _patients_table(y_test, X_test, risk, surv, surv_used, recalibrator is not None, horizons, groupings)
    used = {"groups": str(spec), "rules": list(rule_models), "horizons_months": horizons.tolist(),
            "horizon_months": float(horizon_months), "recalibrate": recalibrator is not None,
            "training_predictions": source, "n_train": len(y_train) if have_train else 0,
            "n_test": len(y_test), "n_boot": settings.n_boot, "random_state": seed,
            "sizes": {name: None if g.train_shares_ is None else g.train_shares_.round(4).to_dict()
                      for name, (g, _) in fitted.items()}}
    return RuleComparison(comparison=comparison, calibration=calibration, pairs=tuple(pairs), patients=patients,
                          groupers={name: g for name, (g, _) in fitted.items()}, rules=rule_models,
                          recalibrator=recalibrator, settings=used, notes=tuple(notes))


def _calibration_table(y_test, X_test, groupings, fitted, rule_models, surv, recalibrator, horizons, conf_level
                       ) -> pd.DataFrame:
    frames = []
    for name in fitted:
        if recalibrator is not None:
            table = calibration_before_after(y_test, groupings[name], surv, recalibrator, conf_level=conf_level)
        else:
            table = group_calibration(y_test, groupings[name], surv, horizons, conf_level=conf_level).horizons
            table.insert(0, "stage", "before")
        frames.append(table.assign(grouping=name))
    hdays = months_to_days(horizons)
    for name, rule in rule_models.items():
        pred = rule.predict_survival_at(X_test, hdays)
        table = group_calibration(y_test, groupings[name], pred, horizons, conf_level=conf_level).horizons
        table.insert(0, "stage", "rule KM")
        frames.append(table.assign(grouping=name))
    for f in frames:
        f["group"] = f["group"].astype(str)
    out = pd.concat(frames, ignore_index=True)
    return out[["grouping"] + [c for c in out.columns if c != "grouping"]]
