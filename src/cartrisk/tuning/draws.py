"""How a worker asks for a trial: its parameters drawn before the trial exists, from the trials read under the lock.

With an independent sampler (TPE, random) and the objective's own ``suggest_*`` calls (``StudyJob.draw``), a
trial's parameters are drawn first and written with the new trial in one storage operation, instead of one write
(and one read of the study) per parameter; the objective's calls then read them back. The draws are the
sampler's, in the same order.

While it draws, the sampler sees the study's trials as the worker has just read them under the study lock (to
count them) instead of reading the storage again for every parameter: Optuna's TPE sampler reads all trials,
running ones included, for each parameter it draws (its ``constant_liar`` default). With one worker nothing
can change between the two reads, so the draws are those the sampler would have made itself; with several, a
trial that another worker finished in the same few milliseconds may be seen as still running.
"""

from __future__ import annotations

import copy
import datetime
import warnings
from collections.abc import Callable, Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["ask"]


class _Snapshot:
    """The study as a sampler sees it while drawing: every attribute the study's own, its trials those given."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)


class _Draw:
    """Stands in for a trial while a sampler draws its parameters."""

    def __init__(self, study: optuna.Study | _Snapshot) -> None:
        self.study = study
        now = datetime.datetime.now()
        self.frozen = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=now,
                                  datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                                  intermediate_values={}, trial_id=-1)

    def _draw(self, name: str, distribution) -> Any:
        if name in self.frozen.distributions:
            return self.frozen.params[name]
        if distribution.single():
            value = optuna.distributions._get_single_value(distribution)
        else:
            value = self.study.sampler.sample_independent(self.study, self.frozen, name, distribution)
        self.frozen.distributions[name] = distribution
        self.frozen.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False):
        return self._draw(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        return self._draw(name, optuna.distributions.IntDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices):
        return self._draw(name, optuna.distributions.CategoricalDistribution(choices))


def ask(study: optuna.Study, draw: Callable[[Any], Any] | None, trials: list[FrozenTrial] | None = None
        ) -> optuna.Trial:
    """A new running trial of ``study``.

    Parameters
    ----------
    study : Study
    draw : callable(trial), optional
        The objective's ``suggest_*`` calls (an independent sampler only): the parameters are drawn first and
        written with the trial. None: Optuna's ``study.ask()``.
    trials : list of FrozenTrial, optional
        The study's trials as just read (under the study lock): what the sampler draws from.
    """
    if draw is None:
        with warnings.catch_warnings():  # cartrisk records the heartbeats itself
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
            return study.ask()
    seen = study if trials is None else _Snapshot(study, trials)
    drawn = _Draw(seen)
    study.sampler.before_trial(seen, drawn.frozen)
    draw(drawn)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=drawn.frozen)
    return optuna.Trial(study, trial_id)
