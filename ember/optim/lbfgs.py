"""L-BFGS, as ``torch.optim.LBFGS`` without a line search (its default): the update direction is
the two-loop recursion over the last ``history_size`` curvature pairs, the step a fixed lr (the
first iteration min(1, 1/‖g‖₁)·lr), and ``step(closure)`` runs up to max_iter iterations."""
from __future__ import annotations

import numpy as np

from .optimizer import Optimizer


class LBFGS(Optimizer):
    """Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989), PyTorch's algorithm step for step.

    Per iteration, with g the flattened gradient and pairs (s_i = t·d, y_i = g_new − g_old):
        store the pair when yᵀs > 1e-10 (dropping the oldest past history_size), ρ_i = 1/(y_iᵀs_i),
        H₀ = yᵀs / yᵀy;  two-loop recursion: q = −g; for i newest..oldest: α_i = ρ_i s_iᵀq, q −= α_i y_i;
        r = H₀·q; for i oldest..newest: β = ρ_i y_iᵀr, r += (α_i − β) s_i;  d = r
        θ ← θ + t·d,  t = lr (first iteration: min(1, 1/‖g‖₁)·lr)
    Stops when max_iter or max_eval is reached, |g|∞ ≤ tolerance_grad, the directional derivative
    gᵀd > −tolerance_change, |t·d|∞ ≤ tolerance_change or the loss changes less than tolerance_change.
    Args (PyTorch's): params (one group), lr=1, max_iter=20, max_eval=max_iter·5//4,
        tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None.
    step(closure): closure re-evaluates the model, calls backward() and returns the loss; returns
        the first evaluation's loss.
    Raises: ValueError for several parameter groups (PyTorch's message); NotImplementedError for
        line_search_fn='strong_wolfe' (not in ember), RuntimeError for another name (PyTorch's).
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval=None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _flat_grad(self):
        return np.concatenate([(p.grad._data if p.grad is not None else np.zeros_like(p._data)).reshape(-1)
                               for p in self._params])

    def _add(self, t, d):
        offset = 0
        for p in self._params:
            n = p._data.size
            p._data += t * d[offset:offset + n].reshape(p.shape)
            p._vc[0] += 1
            offset += n

    def step(self, closure):
        """Up to max_iter L-BFGS iterations on the loss ``closure`` computes; returns its first value."""
        from ..autograd import enable_grad
        group = self.param_groups[0]
        if group["line_search_fn"] is not None:
            if group["line_search_fn"] != "strong_wolfe":
                raise RuntimeError("only 'strong_wolfe' is supported")
            raise NotImplementedError("LBFGS(line_search_fn='strong_wolfe') is not supported by ember; use the "
                                      "default (no line search)")
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, history = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if np.abs(g).max() <= tol_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro, h_diag = (state.get(k) for k in ("old_dirs", "old_stps", "ro", "H_diag"))
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, old_dirs, old_stps, ro, h_diag = -g, [], [], [], 1
            else:
                y, s = g - prev_g, d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history:
                        old_dirs.pop(0), old_stps.pop(0), ro.pop(0)
                    old_dirs.append(y), old_stps.append(s), ro.append(1.0 / ys)
                    h_diag = ys / y.dot(y)
                al = [None] * len(old_dirs)
                q = -g
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                d = r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]
            prev_g, prev_loss = g.copy(), loss
            t = min(1.0, 1.0 / np.abs(g).sum()) * lr if state["n_iter"] == 1 else lr
            if g.dot(d) > -tol_change:
                break
            self._add(t, d)
            evaluated = 0
            if n_iter != max_iter:
                with enable_grad():
                    loss = float(closure())
                g = self._flat_grad()
                evaluated = 1
            evals += evaluated
            state["func_evals"] += evaluated
            if n_iter == max_iter or evals >= max_eval or np.abs(g).max() <= tol_grad:
                break
            if np.abs(d * t).max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return orig_loss
