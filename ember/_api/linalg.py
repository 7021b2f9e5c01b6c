"""``ember.linalg``: torch.linalg's norms (``vector_norm``, ``matrix_norm``, ``norm``) over
``Tensor.norm``, and ``cdist`` for ``ember.cdist``. Differentiable as Tensor.norm is (the 2-norm's
gradient at 0 is 0, as torch's)."""
from __future__ import annotations

from ..tensor import Tensor


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """The ord-norm of x's entries over ``dim`` (all by default), as torch.linalg.vector_norm:
    ord 2, 1, inf, −inf, 0 or any p."""
    return x.norm(ord, dim=dim, keepdim=keepdim, dtype=dtype)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """The Frobenius norm over the two ``dim`` (torch.linalg.matrix_norm with ord='fro').
    Raises: NotImplementedError for another ord (nuclear, spectral: they need an SVD)."""
    if ord != "fro":
        raise NotImplementedError(f"linalg.matrix_norm: ord={ord!r} is not supported here (only 'fro')")
    return A.norm("fro", dim=tuple(dim), keepdim=keepdim, dtype=dtype)


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.linalg.norm: with ord None, the 2-norm of the flattened entries (vector or matrix
    Frobenius); a vector ord with an int dim or a 1-D input; 'fro' for matrices.
    Raises: NotImplementedError for the matrix ords that need an SVD."""
    if ord is None:
        return A.norm("fro", dim=dim, keepdim=keepdim, dtype=dtype)
    if ord == "fro" or (dim is not None and not isinstance(dim, int) and len(dim) == 2):
        return matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if isinstance(dim, int) or A.ndim == 1:
        return vector_norm(A, ord, dim, keepdim, dtype=dtype)
    raise NotImplementedError(f"linalg.norm: ord={ord!r} of a matrix is not supported here (use 'fro')")


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode=None) -> Tensor:
    """Distances between every row of x1 and of x2 (torch.cdist): (*, P, M), (*, R, M) -> (*, P, R),
    ‖x1[i] − x2[j]‖_p, by broadcasting (not torch's matmul shortcut, so the last digits of large
    float32 inputs can differ). Differentiable."""
    return (x1.unsqueeze(-2) - x2.unsqueeze(-3)).norm(p, dim=-1)
