"""``torch.autograd.gradcheck``: compare an op's analytical Jacobian (its backward, the VJP with
each unit vector) with central finite differences, in float64 — the check every op in
``ember/ops/`` passes in the test suite, for a student's own ``Function``.

    numerical  J[i, j] ≈ (f(x + ε·e_j)[i] − f(x − ε·e_j)[i]) / (2ε)
    analytical J[i, j] = (∂ out_i / ∂ x_j), row i from backward() of the unit vector e_i

A mismatch beyond atol + rtol·|numerical| raises ``GradcheckError`` (a RuntimeError) with both
Jacobians, as PyTorch's; raise_exception=False returns False instead. Inputs that are not float64
draw PyTorch's warning (the finite differences are then too coarse). Source: PyTorch 2.13's
torch.autograd.gradcheck (its arguments, message and warning).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..tensor import Tensor


class GradcheckError(RuntimeError):
    """The analytical and numerical Jacobians differ (torch.autograd.gradcheck.GradcheckError)."""


def _outputs(func, inputs):
    out = func(*inputs)
    return [o for o in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(o, Tensor)]


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
              **unused_torch_options) -> bool:
    """True when every output's Jacobian with respect to every input that requires grad matches
    finite differences. Args (PyTorch's): func (Tensors -> a Tensor or a tuple of them), inputs
    (a Tensor or a tuple; non-Tensors pass through), eps, atol, rtol, raise_exception; PyTorch's
    other options (fast_mode, check_batched_grad, ...) are accepted and ignored.
    Raises: GradcheckError naming the output and input with both Jacobians."""
    from .. import autograd
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for k in checked:
        if inputs[k].dtype != np.float64:
            warnings.warn(f"Input #{k} requires gradient and is not a double precision floating point or complex. "
                          "This check will likely fail if all the inputs are not of double precision floating point "
                          "or complex. ")
    outs = _outputs(func, inputs)
    for o_index, out in enumerate(outs):
        n_out = out._data.size
        for k in checked:
            x = inputs[k]
            flat = x._data.reshape(-1)                 # a view: perturbed in place, restored after
            numerical = np.zeros((flat.size, n_out))
            for j in range(flat.size):
                keep = flat[j]
                flat[j] = keep + eps
                with autograd.no_grad():
                    plus = _outputs(func, inputs)[o_index]._data.astype(np.float64).reshape(-1)
                flat[j] = keep - eps
                with autograd.no_grad():
                    minus = _outputs(func, inputs)[o_index]._data.astype(np.float64).reshape(-1)
                flat[j] = keep
                numerical[j] = (plus - minus) / (2 * eps)
            analytical = np.zeros((flat.size, n_out))
            for i in range(n_out):
                y = _outputs(func, inputs)[o_index]
                seed = np.zeros(n_out, y._data.dtype)
                seed[i] = 1
                (g,) = autograd.grad(y, [x], Tensor(seed.reshape(y.shape)), allow_unused=True)
                if g is not None:
                    analytical[:, i] = g._data.astype(np.float64).reshape(-1)
            if not np.allclose(analytical, numerical, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(f"Jacobian mismatch for output {o_index} with respect to input {k},\n"
                                     f"numerical:{Tensor(numerical)!r}\nanalytical:{Tensor(analytical)!r}\n")
    return True
