"""The numba kernel of :func:`cartrisk.evaluation._fastsurv.concordance`, compiled once and cached on disk.

In a module of its own, imported only when a concordance is first computed: numba caches a module-level function
(``cache=True``: machine code in ``__pycache__`` or ``NUMBA_CACHE_DIR``), so a new process loads it instead of
compiling it again (about 0.6 s).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def concordance_sums(time, event, rank, weight, n_ranks):  # pragma: no cover - compiled
    """Sums of a (weighted) Harrell C over time-sorted data: (concordant weight, comparable weight)."""
    tree = np.zeros(n_ranks + 1)
    num = 0.0
    den = 0.0
    total = 0.0
    n = time.shape[0]
    end = n
    while end > 0:
        start = end - 1
        while start > 0 and time[start - 1] == time[end - 1]:
            start -= 1
        for i in range(start, end):  # censored at this time are comparable with its events
            if not event[i]:
                k = rank[i] + 1
                while k <= n_ranks:
                    tree[k] += 1.0
                    k += k & -k
                total += 1.0
        for i in range(start, end):
            if event[i]:
                below = 0.0
                k = rank[i]
                while k > 0:
                    below += tree[k]
                    k -= k & -k
                at_or_below = 0.0
                k = rank[i] + 1
                while k > 0:
                    at_or_below += tree[k]
                    k -= k & -k
                num += weight[i] * (below + 0.5 * (at_or_below - below))
                den += weight[i] * total
        for i in range(start, end):
            if event[i]:
                k = rank[i] + 1
                while k <= n_ranks:
                    tree[k] += 1.0
                    k += k & -k
                total += 1.0
        end = start
    return num, den
