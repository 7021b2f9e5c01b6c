"""Gradient checkers shared by the op tests (``test_ops.py``, ``test_fuzz.py``).

Three independent checks of an op's backward (as PyTorch's ``torch.autograd.gradcheck`` and
its OpInfo tests do):

* ``gradcheck``: the full Jacobian J[i, j] = ∂y_i/∂x_j by float64 central differences
  (x ± eps e_j, eps = 1e-6) against the analytical one (one backward per output element,
  upstream gradient e_i).
* ``dircheck``: for shapes too large for a full Jacobian, a random-direction check
  ⟨u, J v⟩ (finite differences along v) against Σ_k ⟨Jᵀu, v⟩_k (one backward with upstream u).
* ``torch_parity``: the same inputs through ember and PyTorch; the forward values and the
  gradient of EVERY input under the same RANDOM upstream gradient must agree.

Every failure names the op row, the input index, the worst element and both values.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ember.tensor import Tensor


class GradcheckError(AssertionError):
    """A gradient (or forward value) that disagrees with its reference."""


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out,)


def _run(fn, arrays, requires_grad=True):
    ts = [Tensor(a, requires_grad=requires_grad) for a in arrays]
    out = fn(*ts)
    if not isinstance(out, Tensor):
        raise TypeError(f"op returned {type(out).__name__}, expected a Tensor")
    return ts, out


def _worst(actual, expected, rtol, atol):
    """Index and excess of the element that breaks |a − e| ≤ atol + rtol|e| the most (None if none)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        return "shape", None
    both_nonfinite = ~np.isfinite(expected) & ((actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    err = np.where(both_nonfinite, -1.0, np.nan_to_num(err, nan=np.inf))
    if err.size == 0 or err.max() <= 0:
        return None, None
    idx = np.unravel_index(int(np.argmax(err)), err.shape)
    return idx, err[idx]


def assert_close(actual, expected, rtol, atol, what):
    """Raise GradcheckError naming ``what``, the worst element and both values."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    idx, _ = _worst(actual, expected, rtol, atol)
    if idx is None:
        return
    if idx == "shape":
        raise GradcheckError(f"{what}: shape {actual.shape} != expected shape {expected.shape}")
    raise GradcheckError(f"{what}: worst element {tuple(int(i) for i in idx)}: got {actual[idx]!r}, "
                         f"expected {expected[idx]!r} (rtol={rtol:g}, atol={atol:g}, "
                         f"{int((~np.isclose(actual, expected, rtol, atol, equal_nan=True)).sum())} of "
                         f"{actual.size} elements differ)")


def _flat_set(a, j, value):
    a[np.unravel_index(j, a.shape)] = value


def numerical_jacobian(fn, arrays, eps=1e-6):
    """List (per input) of J_k with shape (out.size, x_k.size), by central differences."""
    arrays = [np.array(a, dtype=np.float64, copy=True, order="K") for a in arrays]
    jacs = []
    for k, a in enumerate(arrays):
        cols = []
        for j in range(a.size):
            orig = a[np.unravel_index(j, a.shape)]
            _flat_set(a, j, orig + eps)
            yp = fn(*[Tensor(x) for x in arrays]).numpy().astype(np.float64).ravel()
            _flat_set(a, j, orig - eps)
            ym = fn(*[Tensor(x) for x in arrays]).numpy().astype(np.float64).ravel()
            _flat_set(a, j, orig)
            cols.append((yp - ym) / (2 * eps))
        jacs.append(np.stack(cols, axis=1) if cols else np.zeros((0, 0)))
    return jacs


def analytical_jacobian(fn, arrays):
    """List (per input) of J_k (out.size, x_k.size): one backward per output element."""
    ts, out = _run(fn, arrays)
    jacs = [np.zeros((out.numpy().size, a.size)) for a in arrays]
    for i in range(out.numpy().size):
        for t in ts:
            t.grad = None
        g = np.zeros(out.shape, dtype=out.dtype)
        _flat_set(g, i, 1)
        out.backward(g, retain_graph=True)
        for k, t in enumerate(ts):
            if t.grad is not None:
                if t.grad.shape != t.shape:
                    raise GradcheckError(f"gradient of input {k} has shape {t.grad.shape}, input has {t.shape}")
                jacs[k][i] = t.grad.numpy().astype(np.float64).ravel()
    return jacs


def gradcheck(fn, arrays, name="op", eps=1e-6, atol=1e-5, rtol=1e-3):
    """Compare the full analytical Jacobian of ``fn`` with float64 central differences.

    Args:
        fn: callable Tensor... -> Tensor (the op under test, constants bound in a closure).
        arrays: float64 ndarrays, one per differentiable input (views/strides are kept).
    Raises:
        GradcheckError: "<name>: Jacobian mismatch for output 0 with respect to input k ...".
    """
    arrays = [np.asarray(a) for a in arrays]
    assert all(a.dtype == np.float64 for a in arrays), "gradcheck needs float64 inputs"
    num = numerical_jacobian(fn, arrays, eps)
    ana = analytical_jacobian(fn, arrays)
    for k, (n, a) in enumerate(zip(num, ana)):
        idx, _ = _worst(a, n, rtol, atol)
        if idx is not None:
            i, j = idx if idx != "shape" else (0, 0)
            raise GradcheckError(
                f"{name}: Jacobian mismatch for output 0 with respect to input {k}: worst element "
                f"d out[{np.unravel_index(int(i), fn_out_shape(fn, arrays))}] / d in{k}"
                f"[{np.unravel_index(int(j), arrays[k].shape)}]: analytical {a[i, j]!r}, numerical {n[i, j]!r}")
    return True


def fn_out_shape(fn, arrays):
    return fn(*[Tensor(a) for a in arrays]).shape


def dircheck(fn, arrays, name="op", eps=1e-6, rtol=1e-6, trials=2, seed=0):
    """Random-direction check: ⟨u, J v⟩ by central differences vs ⟨Jᵀu, v⟩ from backward.

    Cheap for any size: two forwards per trial plus one backward. ``u`` and each input's
    ``v_k`` are standard normal; the check is per input (v non-zero on one input at a time),
    so a failure names the input.
    Raises: GradcheckError naming the row, the input and both inner products.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a) for a in arrays]
    for _ in range(trials):
        ts, out = _run(fn, arrays)
        u = rng.standard_normal(out.shape).astype(out.dtype)
        out.backward(u)
        for k, a in enumerate(arrays):
            v = rng.standard_normal(a.shape)
            plus = [x if i != k else x + eps * v for i, x in enumerate(arrays)]
            minus = [x if i != k else x - eps * v for i, x in enumerate(arrays)]
            yp = fn(*[Tensor(x) for x in plus]).numpy()
            ym = fn(*[Tensor(x) for x in minus]).numpy()
            jv = float(np.sum(u * (yp - ym))) / (2 * eps)
            g = ts[k].grad
            jtu = 0.0 if g is None else float(np.sum(g.numpy() * v))
            scale = max(abs(jv), abs(jtu), np.sqrt(np.sum(u * u)) * 1e-3)
            if abs(jv - jtu) > rtol * scale + 1e-9:
                raise GradcheckError(f"{name}: directional derivative mismatch with respect to input {k}: "
                                     f"<u, J v> = {jv!r} (finite differences) but <J^T u, v> = {jtu!r} (backward)")
    return True


def torch_parity(fn, tfn, arrays, name="op", rtol=None, atol=None, seed=0, check_forward=True):
    """Run ``fn`` (ember) and ``tfn`` (torch) on the same inputs; compare the forward and the
    gradient of every input under one random upstream gradient.

    Tolerances default to 1e-8 relative in float64 and 1e-4 in float32, with an absolute
    floor scaled by the largest reference value (sums of many terms cancel differently).
    Raises: GradcheckError "<name>: gradient of input k differs from torch: worst element ...".
    """
    import torch
    arrays = [np.asarray(a) for a in arrays]
    dt = arrays[0].dtype if arrays else np.float64
    if rtol is None:
        rtol = 1e-8 if dt == np.float64 else 1e-4
    ts, out = _run(fn, arrays)
    tts = [torch.from_numpy(np.array(a, copy=True, order="K")).requires_grad_(True) for a in arrays]
    tout = tfn(*tts)
    ref = tout.detach().numpy()
    scale = float(np.max(np.abs(ref[np.isfinite(ref)]), initial=0.0)) or 1.0
    a_tol = atol if atol is not None else rtol * scale
    if out.dtype != ref.dtype:
        raise GradcheckError(f"{name}: output dtype {out.dtype} but torch gives {ref.dtype}")
    if check_forward:
        assert_close(out.numpy(), ref, rtol, a_tol, f"{name}: forward output differs from torch")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(out.shape).astype(out.dtype)
    out.backward(u)
    tout.backward(torch.from_numpy(u.copy()))
    for k, (t, tt) in enumerate(zip(ts, tts)):
        tg = tt.grad
        if tg is None:
            if t.grad is not None and np.any(t.grad.numpy()):
                raise GradcheckError(f"{name}: input {k} has a gradient but torch gives none")
            continue
        if t.grad is None:
            raise GradcheckError(f"{name}: input {k} got no gradient (torch gives one)")
        tg = tg.numpy()
        if t.grad.dtype != tg.dtype:
            raise GradcheckError(f"{name}: gradient of input {k} has dtype {t.grad.dtype}, torch {tg.dtype}")
        gscale = float(np.max(np.abs(tg[np.isfinite(tg)]), initial=0.0)) or 1.0
        assert_close(t.grad.numpy(), tg, rtol, atol if atol is not None else rtol * gscale,
                     f"{name}: gradient of input {k} differs from torch")
    return True


def run_with_grads(fn, arrays, kw, grad_out=None, seed=1):
    """Apply op ``fn`` to copies of ``arrays`` (each a leaf requiring grad; memory order kept, so a
    CHWN-ordered input stays CHWN) with keywords ``kw``, backpropagate ``grad_out`` (seeded normal
    when None); return (output array, [input gradient arrays], grad_out). Kernel-vs-reference tests."""
    ts = [Tensor(a.copy(order="K"), requires_grad=True) for a in arrays]
    y = fn.apply(*ts, **kw)
    if grad_out is None:
        grad_out = np.random.default_rng(seed).standard_normal(y.shape).astype(y._data.dtype)
    y.backward(Tensor(grad_out))
    return y._data, [t.grad._data for t in ts], grad_out


def assert_conv_equals_reference(op, x, w, b, kw, tol, name):
    """Op ``op`` (a Conv2d kernel) against ember.ops.conv.Conv2d on the same inputs and upstream
    gradient: forward and grad_x, grad_w, grad_b, each with the reference's shape and x's dtype,
    within ``tol`` relative to the reference's largest magnitude."""
    from ember.ops import conv as ref_conv
    y_ref, g_ref, go = run_with_grads(ref_conv.Conv2d, [x, w, b], kw)
    y, gs, _ = run_with_grads(op, [x, w, b], kw, grad_out=go)
    assert y.dtype == x.dtype and y.shape == y_ref.shape
    close_scaled(y, y_ref, tol, f"{name} forward")
    for what, a, e in zip(("grad_x", "grad_w", "grad_b"), gs, g_ref):
        assert a.shape == e.shape and a.dtype == x.dtype
        close_scaled(a, e, tol, f"{name} {what}")


def assert_conv_equals_torch(op, x, w, b, kw, name):
    """Op ``op`` against torch.nn.functional.conv2d in float64 (forward and the three gradients
    to 1e-10 relative to torch's largest magnitude)."""
    import torch
    y, gs, go = run_with_grads(op, [x, w, b], kw)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    ty.backward(torch.tensor(go))
    close_scaled(y, ty.detach().numpy(), 1e-10, f"{name} forward vs torch")
    for what, a, t in zip(("grad_x", "grad_w", "grad_b"), gs, (tx, tw, tb)):
        close_scaled(a, t.grad.numpy(), 1e-10, f"{name} {what} vs torch")


def assert_same_bits_across_thread_counts(op, arrays, kw, counts=(2, 3, 1, 2)):
    """Op ``op``'s output and input gradients are the same bits with 1 thread and each of
    ``counts`` (ember.threads), the upstream gradient fixed; the thread count is restored."""
    from ember import threads
    saved = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        base_y, base_g, go = run_with_grads(op, arrays, kw)
        for n in counts:
            threads.set_num_threads(n)
            y, gs, _ = run_with_grads(op, arrays, kw, grad_out=go)
            assert np.array_equal(y, base_y), f"{n} threads: forward differs"
            for a, e in zip(gs, base_g):
                assert np.array_equal(a, e), f"{n} threads: a gradient differs"
    finally:
        threads.set_num_threads(saved)


def close_scaled(actual, expected, tol, what):
    """assert_close with rtol = tol and atol = tol × the largest |expected| (kernel tests)."""
    scale = float(np.abs(expected).max()) if np.size(expected) else 1.0
    assert_close(actual, expected, rtol=tol, atol=tol * scale, what=what)


def write_tree(root: Path, files: dict, prefix: str = "") -> Path:
    """Write {relative path: bytes} under root/prefix (folders made as needed); return root."""
    for rel, data in files.items():
        (root / prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / prefix / rel).write_bytes(data)
    return root


def write_zip(path: Path, files: dict, prefix: str = "") -> Path:
    """Write {relative path: bytes} into a new zip at path, each name with prefix; return path."""
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in files.items():
            z.writestr(prefix + rel, data)
    return path


def assert_same_error(call, theirs, ours):
    """``call(*theirs)`` (PyTorch's modules) must raise; ``call(*ours)`` (ember's) must raise the
    same exception type with the same message."""
    import pytest
    with pytest.raises(Exception) as expected:
        call(*theirs)
    with pytest.raises(type(expected.value)) as got:
        call(*ours)
    assert str(got.value) == str(expected.value)
