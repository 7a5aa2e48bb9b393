"""Log runs from a background thread, so that a tuning trial never waits for MLflow.

A trial's run is logged once the trial is over, in one go (:meth:`cartrisk.tracking.Tracker.record_run`:
create with tags and start time, one batch of parameters and metrics, end with the state and end
time). :class:`RunWriter` hands that record to a thread of the same process and returns at once:
the requests (to a SQLite store or a tracking server) overlap the next trial's work instead of
adding to it. :meth:`RunWriter.flush` waits until every record handed over is written; a worker
calls it when it leaves a study and before it exits on an interrupt.

Only a process killed outright (SIGKILL) can lose records, and only those of trials that ended in
the last few milliseconds before the kill; a trial that was running is failed and replaced by the
workers left (see :mod:`cartrisk.tuning.studies`), which log a FAILED run for it.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

__all__ = ["RunWriter"]


class RunWriter:
    """A queue of runs to log and the thread that logs them (started on first use).

    Parameters
    ----------
    tracking_uri, experiment : str
        Where the runs go (the thread opens its own :class:`~cartrisk.tracking.Tracker`).
    """

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self.errors: list[BaseException] = []

    def __getstate__(self) -> dict:
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tracking_uri"], state["experiment"])

    def _ensure_thread(self) -> None:
        import os

        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        if self._pid != os.getpid():  # a forked child: the parent's queue and thread are not ours
            self._queue = queue.Queue()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="cartrisk-mlflow-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from cartrisk.tracking.client import Tracker

        tracker = Tracker(self.tracking_uri, self.experiment)
        while True:
            record = self._queue.get()
            try:
                if record is None:
                    return
                tracker.record_run(**record)
            except Exception as err:  # kept and raised by flush(), in the caller's thread
                self.errors.append(err)
            finally:
                self._queue.task_done()

    def submit(self, **record: Any) -> None:
        """Hand over one run (the keyword arguments of :meth:`Tracker.record_run`); returns at once."""
        self._ensure_thread()
        self._queue.put(record)

    def flush(self) -> None:
        """Wait until every run handed over is logged; raise the first logging error, if any."""
        if self._thread is None or self._pid is None:
            return
        import os

        if self._pid != os.getpid():
            return
        self._queue.join()
        if self.errors:
            err, self.errors = self.errors[0], []
            raise err
