"""The float64 interventional TreeSHAP kernel, compiled by numba once and cached on disk.

Imported only when a background is given to :func:`cartrisk.explain._treeshap.tree_shap` (numba's import
and, on the first run of a new installation, its compilation are paid there, not by ``import cartrisk``).
``cache=True`` keeps the compiled machine code in ``__pycache__`` (or ``NUMBA_CACHE_DIR``), so later
processes load it instead of compiling again.

For one explained row x, one background row r and one tree, the game is ``v(S) = tree(x_S, r_notS)``.
Only the features on which x and r take different branches matter. Walking down from the root, a node
whose feature sends x and r the same way, or was already decided higher up, has one child to visit;
a feature met for the first time with x and r apart opens two branches: x's (the feature is taken
from x) and r's (taken from r). A leaf reached with ``a`` features taken from x and ``b`` from r adds
``v (a-1)! b! / (a+b)!`` to each of the ``a`` and subtracts ``v a! (b-1)! / (a+b)!`` from each of the
``b`` (the Shapley values of the game ``1[A in S, B outside S]``). Instead of adding at each leaf to
every feature of its path, the walk returns the two sums of its subtree's leaves, and the feature
that opened the branches collects them once: the x branch's positive sum minus the r branch's
negative sum. The cost is one visit per reachable node, like shap's own interventional algorithm,
in float64 throughout (shap's stores values, thresholds and weights as float32). The walk keeps an
explicit stack: numba's on-disk cache does not hold recursive functions safely (a cached recursive
kernel crashed on loading).

Explained rows are spread over numba's threads (``numba.set_num_threads``; all cores by default).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["explain", "predict"]


@numba.njit(cache=True, inline="always")
def _child(node, f, row, row_nan, cl, cr, cd, thr):  # pragma: no cover - compiled
    if row_nan[f]:
        return cd[node]
    return cl[node] if row[f] <= thr[node] else cr[node]


_VISIT, _SET, _COMBINE = 0, 1, 2


@numba.njit(cache=True)
def _directions(cl, cr, cd, feat, thr, row, row_nan, out):  # pragma: no cover - compiled
    """``out[node]``: the child that ``row`` goes to at each internal node of one tree (-1 at leaves)."""
    for node in range(cl.shape[0]):
        out[node] = -1 if cl[node] < 0 else _child(node, feat[node], row, row_nan, cl, cr, cd, thr)


@numba.njit(cache=True, inline="always")
def _push(tasks, top, kind, node, a, b, f):  # pragma: no cover - compiled
    tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3], tasks[top, 4] = kind, node, a, b, f
    return top + 1


@numba.njit(cache=True)
def _walk(cl, feat, val, x_dir, r_dir, status, w_pos, w_neg, phi, tasks, results):  # pragma: no cover - compiled
    """Walk one tree for one (x, r) pair; add to ``phi`` the contributions of the features that split x and r.

    An explicit stack instead of recursion (numba's on-disk cache does not hold recursive functions safely):
    ``tasks`` rows are (kind, node, a, b, feature), ``results`` rows the (positive, negative) sums of finished
    subtrees. A split of x and r on a new feature f pushes, to run in this order: status f = 1, visit x's child,
    status f = 2, visit r's child, status f = 0, combine the two subtrees' sums into phi[f] and their total.
    """
    top, n_results = 1, 0
    tasks[0, 0], tasks[0, 1], tasks[0, 2], tasks[0, 3] = _VISIT, 0, 0, 0
    while top > 0:
        top -= 1
        kind, node, a, b, f = tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3], tasks[top, 4]
        if kind == _SET:
            status[f] = a
            continue
        if kind == _COMBINE:
            n_results -= 1
            r_pos, r_neg = results[n_results, 0], results[n_results, 1]
            x_pos, x_neg = results[n_results - 1, 0], results[n_results - 1, 1]
            phi[f] += x_pos - r_neg
            results[n_results - 1, 0], results[n_results - 1, 1] = x_pos + r_pos, x_neg + r_neg
            continue
        split = False
        while cl[node] >= 0:
            f = feat[node]
            x_child, r_child = x_dir[node], r_dir[node]
            if x_child == r_child or status[f] == 1:
                node = x_child
            elif status[f] == 2:
                node = r_child
            else:
                split = True
                break
        if not split:
            v = val[node]
            results[n_results, 0], results[n_results, 1] = v * w_pos[a, b], v * w_neg[a, b]
            n_results += 1
            continue
        top = _push(tasks, top, _COMBINE, 0, 0, 0, f)
        top = _push(tasks, top, _SET, 0, 0, 0, f)
        top = _push(tasks, top, _VISIT, r_child, a, b + 1, f)
        top = _push(tasks, top, _SET, 0, 2, 0, f)
        top = _push(tasks, top, _VISIT, x_child, a + 1, b, f)
        top = _push(tasks, top, _SET, 0, 1, 0, f)


@numba.njit(cache=True, parallel=True)
def explain(cl, cr, cd, feat, thr, val, X, R, w_pos, w_neg, block_bytes=2**27):  # pragma: no cover - compiled
    """Interventional SHAP values of the rows of ``X`` against the background rows ``R`` (trees stacked by row).

    Where each background row goes at each node is worked out once for all explained rows (for blocks of trees
    of at most ``block_bytes``), and where each explained row goes once per tree for all background rows; the
    walks then only look these up. Explained rows are spread over the threads.
    """
    n, m = X.shape
    n_trees, width = cl.shape
    n_back = R.shape[0]
    phi = np.zeros((n, m))
    X_nan = np.isnan(X)
    R_nan = np.isnan(R)
    block = max(1, min(n_trees, block_bytes // (4 * n_back * width)))
    r_dir = np.empty((block, n_back, width), dtype=np.int32)
    for first in range(0, n_trees, block):
        last = min(n_trees, first + block)
        for k in numba.prange((last - first) * n_back):
            t, j = first + k // n_back, k % n_back
            _directions(cl[t], cr[t], cd[t], feat[t], thr[t], R[j], R_nan[j], r_dir[t - first, j])
        for i in numba.prange(n):
            status = np.zeros(m, dtype=np.int64)  # 0: not met; 1: taken from x; 2: taken from r
            tasks = np.empty((6 * m + 8, 5), dtype=np.int64)  # each open split holds at most 6 tasks
            results = np.empty((m + 2, 2))
            x_dir = np.empty(width, dtype=np.int32)
            phi_i = phi[i]
            for t in range(first, last):
                cl_t, feat_t, val_t = cl[t], feat[t], val[t]
                _directions(cl_t, cr[t], cd[t], feat_t, thr[t], X[i], X_nan[i], x_dir)
                for j in range(n_back):
                    _walk(cl_t, feat_t, val_t, x_dir, r_dir[t - first, j], status, w_pos, w_neg, phi_i, tasks,
                          results)
    return phi / n_back


@numba.njit(cache=True, parallel=True)
def predict(cl, cr, cd, feat, thr, val, X):  # pragma: no cover - compiled
    """The trees' summed output for each row of ``X``."""
    out = np.zeros(X.shape[0])
    X_nan = np.isnan(X)
    for i in numba.prange(X.shape[0]):
        total = 0.0
        for t in range(cl.shape[0]):
            node = 0
            while cl[t, node] >= 0:
                node = _child(node, feat[t, node], X[i], X_nan[i], cl[t], cr[t], cd[t], thr[t])
            total += val[t, node]
        out[i] = total
    return out
