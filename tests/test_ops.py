"""The op table: one row per differentiable op (every ``Function`` subclass in ``ember.ops``).

Each row runs three checks (see ``tests/helpers.py``):
  * float64 full central-difference Jacobian (small shapes) — ``test_gradcheck``;
  * random-direction ⟨u, J v⟩ vs ⟨Jᵀu, v⟩ (any shape, incl. the large rows) — ``test_dircheck``;
  * PyTorch parity of the forward and every input gradient under a random upstream gradient,
    float64 to 1e-8 relative and float32 to ~1e-4 — ``test_torch_parity``.
Rows cover 0-d tensors, size-1 dims, broadcasting, transposed (non-contiguous) views and odd
sizes. ``test_every_op_has_a_row`` fails when an op exists without a row.

Every check runs through both paths (the ``path`` fixture: ``ember.kernels.use("reference")`` and
``use("fast")``), and ``test_kernel_equals_reference`` compares the two paths directly (forward
and every gradient, float64 to 1e-10 and float32 to 1e-5 relative) for each row that runs a
kernel of ``ember.kernels``; ``test_every_kernel_has_a_row`` fails for a kernel without one.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import zlib
from typing import Callable

import numpy as np
import pytest

import ember
import ember.kernels
import ember.ops
from ember.autograd import Function
from ember.nn import functional as F
from ember.ops import elementwise as ew
from ember.tensor import Tensor

from helpers import GradcheckError, dircheck, gradcheck, torch_parity

torch = pytest.importorskip("torch")
TF = torch.nn.functional


@dataclasses.dataclass
class Row:
    """One op sample: ``fn`` (ember) and ``tfn`` (torch) take the same differentiable inputs,
    built by ``make(rng)`` as float64 arrays; constants (targets, options) live in the closures."""
    name: str
    fn: Callable
    tfn: Callable
    make: Callable
    full: bool = True          # full Jacobian gradcheck (small inputs)
    fd: bool = True            # finite differences meaningful (False: goes through float32)
    f32: bool = True           # also compare in float32
    rtol32: float = 1e-4

    def arrays(self, dtype=np.float64):
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return [a.astype(dtype) for a in self.make(rng)]


def N(*shape):
    return lambda r: r.standard_normal(shape)


def T(*shape):
    """A transposed (non-contiguous) view with the given shape."""
    return lambda r: r.standard_normal(shape[::-1]).T


def P(*shape, lo=0.5, hi=2.0):
    """Positive entries (log, pow, sqrt domains)."""
    return lambda r: r.uniform(lo, hi, shape)


def away(*shape, gap=0.05):
    """Normal entries at least ``gap`` away from 0 (kinks of relu/abs/clamp/leaky_relu)."""
    def make(r):
        x = r.standard_normal(shape)
        return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap * 2, x)
    return make


def ins(*makers):
    return lambda r: [m(r) for m in makers]


ROWS: list[Row] = []


def row(name, fn, tfn, *makers, **kw):
    ROWS.append(Row(name, fn, tfn, ins(*makers), **kw))


# ---- elementwise (binary, with broadcasting) -------------------------------------------------
for op, sym in ((lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul")):
    row(f"{sym}", op, op, N(3, 4), N(3, 4))
    row(f"{sym}_broadcast_row", op, op, N(3, 4), N(4))
    row(f"{sym}_broadcast_col_size1", op, op, N(3, 1), N(1, 4))
    row(f"{sym}_0d", op, op, N(), N(2, 3))
    row(f"{sym}_transposed", op, op, T(4, 3), N(4, 3))
    row(f"{sym}_3d_broadcast", op, op, N(2, 1, 3), N(4, 1))
row("div", lambda a, b: a / b, lambda a, b: a / b, N(3, 4), away(3, 4, gap=0.5))
row("div_broadcast", lambda a, b: a / b, lambda a, b: a / b, N(2, 3, 4), P(3, 1))
row("div_0d_numerator", lambda a, b: a / b, lambda a, b: a / b, N(), P(5))
row("div_python_scalar", lambda a: 2.5 / a, lambda a: 2.5 / a, P(2, 3))
row("sub_python_scalar", lambda a: 1.0 - a, lambda a: 1.0 - a, N(2, 3))
row("neg", lambda a: -a, lambda a: -a, T(3, 5))
row("neg_0d", lambda a: -a, lambda a: -a, N())
for p in (2, 3, 0.5, -1.5, 1, 0):
    row(f"pow_scalar_{p}", lambda a, p=p: a ** p, lambda a, p=p: a ** p, P(3, 4))
row("pow_scalar_3_negative_base", lambda a: a ** 3, lambda a: a ** 3, N(3, 4))
row("pow_scalar_2_transposed", lambda a: a ** 2, lambda a: a ** 2, T(3, 4))
row("pow_tensor", lambda a, b: a ** b, lambda a, b: a ** b, P(3, 4), N(3, 4))
row("pow_tensor_broadcast", lambda a, b: a ** b, lambda a, b: a ** b, P(2, 3), N(3))
row("pow_tensor_0d_exponent", lambda a, b: a ** b, lambda a, b: a ** b, P(4), N())
row("rpow_scalar_base", lambda b: 2.0 ** b, lambda b: 2.0 ** b, N(3, 2))
COND = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])
row("where", lambda a, b: ember.where(Tensor(COND), a, b), lambda a, b: torch.where(torch.from_numpy(COND), a, b),
    N(3, 4), N(3, 4))
row("where_broadcast", lambda a, b: ember.where(Tensor(COND), a, b),
    lambda a, b: torch.where(torch.from_numpy(COND), a, b), N(4), N(3, 1))

# ---- elementwise (unary) -----------------------------------------------------------------
row("exp", lambda a: a.exp(), lambda a: a.exp(), N(3, 4))
row("exp_0d", lambda a: a.exp(), lambda a: a.exp(), N())
row("log", lambda a: a.log(), lambda a: a.log(), P(3, 4))
row("log_transposed", lambda a: a.log(), lambda a: a.log(), lambda r: r.uniform(0.5, 2, (5, 3)).T)
row("abs", lambda a: a.abs(), lambda a: a.abs(), away(4, 3))
row("clamp_min_max", lambda a: a.clamp(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7),
    lambda r: np.round(r.standard_normal((4, 5)), 1) + 0.05)
row("clamp_min_only", lambda a: a.clamp(min=0.3), lambda a: a.clamp(min=0.3), away(3, 4))
row("clamp_max_only", lambda a: a.clamp(max=-0.3), lambda a: a.clamp(max=-0.3), away(3, 4))
row("cast_identity_f64", lambda a: ew.Cast.apply(a, dtype=np.dtype(np.float64)),
    lambda a: a.to(torch.float64), N(3, 4))
row("cast_f64_to_f32_to_f64", lambda a: a.float().double(), lambda a: a.float().double(), N(3, 4),
    full=False, fd=False, f32=False)
row("cast_f32_to_f64", lambda a: a.double(), lambda a: a.double(), N(3, 4), full=False, fd=False)
row("relu", lambda a: F.relu(a), lambda a: TF.relu(a), away(3, 5))
row("relu_transposed_3d", lambda a: F.relu(a), lambda a: TF.relu(a),
    lambda r: away(2, 3, 4)(r).transpose(2, 0, 1))
row("leaky_relu", lambda a: F.leaky_relu(a, 0.2), lambda a: TF.leaky_relu(a, 0.2), away(3, 5))
row("leaky_relu_default", lambda a: F.leaky_relu(a), lambda a: TF.leaky_relu(a), away(4))
row("sigmoid", lambda a: F.sigmoid(a), lambda a: torch.sigmoid(a), lambda r: 4 * r.standard_normal((3, 5)))
row("sigmoid_0d", lambda a: F.sigmoid(a), lambda a: torch.sigmoid(a), N())
row("tanh", lambda a: F.tanh(a), lambda a: torch.tanh(a), T(3, 5))
row("sin", lambda a: a.sin(), lambda a: a.sin(), lambda r: 3 * r.standard_normal((3, 4)))
row("cos_transposed", lambda a: a.cos(), lambda a: a.cos(), T(4, 3))
row("cos_0d", lambda a: a.cos(), lambda a: a.cos(), N())
row("gelu", lambda a: F.gelu(a), lambda a: TF.gelu(a), lambda r: 3 * r.standard_normal((3, 5)))
row("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), lambda a: TF.gelu(a, approximate="tanh"),
    lambda r: 3 * r.standard_normal((4, 3)))
row("gelu_0d", lambda a: F.gelu(a), lambda a: TF.gelu(a), N())
row("silu", lambda a: F.silu(a), lambda a: TF.silu(a), lambda r: 4 * r.standard_normal((3, 5)))
row("silu_transposed", lambda a: F.silu(a), lambda a: TF.silu(a), T(2, 3))
row("softplus", lambda a: F.softplus(a), lambda a: TF.softplus(a), lambda r: 4 * r.standard_normal((3, 5)))
row("softplus_beta_threshold", lambda a: F.softplus(a, beta=2.0, threshold=3.0),
    lambda a: TF.softplus(a, beta=2.0, threshold=3.0),
    lambda r: (lambda x: np.where(np.abs(x - 1.5) < 0.05, 0.5, x))(2 * r.standard_normal((4, 5))))

# ---- matmul / linear ---------------------------------------------------------------------
mm = (lambda a, b: a @ b)
row("matmul_2d", mm, mm, N(3, 4), N(4, 5))
row("matmul_2d_transposed", mm, mm, T(3, 4), T(4, 5))
row("matmul_batched", mm, mm, N(2, 3, 4), N(2, 4, 5))
row("matmul_broadcast_batch", mm, mm, N(3, 4), N(2, 4, 5))
row("matmul_broadcast_size1_batch", mm, mm, N(2, 1, 3, 4), N(3, 4, 2))
row("matmul_vec_vec", mm, mm, N(4), N(4))
row("matmul_mat_vec", mm, mm, N(3, 4), N(4))
row("matmul_vec_mat", mm, mm, N(4), N(4, 5))
row("matmul_batched_vec", mm, mm, N(2, 3, 4), N(4))
row("matmul_vec_batched", mm, mm, N(4), N(2, 4, 3))
row("linear", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b), N(5, 4), N(3, 4), N(3))
row("linear_no_bias_3d", lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), N(2, 5, 4), N(3, 4))
row("linear_transposed_weight", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
    T(5, 4), T(3, 4), N(3))
row("linear_batch1_out1", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
    N(1, 4), N(1, 4), N(1))
row("linear_large", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: TF.linear(x, w, b),
    N(64, 120), N(84, 120), N(84), full=False)

# ---- reductions --------------------------------------------------------------------------
for name, kw in (("all", {}), ("dim1", {"dim": 1}), ("dim_neg1_keepdim", {"dim": -1, "keepdim": True}),
                 ("dims02", {"dim": (0, 2)}), ("dim0_keepdim", {"dim": 0, "keepdim": True})):
    row(f"sum_{name}", lambda a, kw=kw: a.sum(**kw), lambda a, kw=kw: a.sum(**kw), N(2, 3, 4))
    row(f"mean_{name}", lambda a, kw=kw: a.mean(**kw), lambda a, kw=kw: a.mean(**kw), T(2, 3, 4))
row("sum_0d", lambda a: a.sum(), lambda a: a.sum(), N())
row("mean_size1_dim", lambda a: a.mean(1), lambda a: a.mean(1), N(3, 1, 2))
row("max_all", lambda a: a.max(), lambda a: a.max(), N(3, 4))
row("max_dim1", lambda a: a.max(1)[0], lambda a: a.max(1)[0], N(3, 4))
row("max_dim0_keepdim", lambda a: a.max(0, keepdim=True)[0], lambda a: a.max(0, keepdim=True)[0], T(3, 4))
row("max_dim_neg1_3d", lambda a: a.max(-1).values, lambda a: a.max(-1).values, N(2, 3, 4))
row("min_dim1", lambda a: a.min(1)[0], lambda a: a.min(1)[0], N(3, 4))
row("cumsum_dim1", lambda a: a.cumsum(1), lambda a: a.cumsum(1), N(3, 4))
row("cumsum_dim0_transposed", lambda a: a.cumsum(dim=0), lambda a: a.cumsum(dim=0), T(4, 3))
row("cumsum_neg_dim_3d", lambda a: a.cumsum(-1), lambda a: a.cumsum(-1), N(2, 3, 5))

# ---- movement ----------------------------------------------------------------------------
row("reshape", lambda a: a.reshape(4, 3), lambda a: a.reshape(4, 3), N(2, 6))
row("reshape_transposed_input", lambda a: a.reshape(-1), lambda a: a.reshape(-1), T(3, 4))
row("reshape_0d_to_1", lambda a: a.reshape(1, 1), lambda a: a.reshape(1, 1), N())
row("flatten_unsqueeze_squeeze", lambda a: a.flatten(1).unsqueeze(0).squeeze(0),
    lambda a: a.flatten(1).unsqueeze(0).squeeze(0), N(2, 3, 2))
row("permute", lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), N(2, 3, 4))
row("transpose_T", lambda a: a.T * 1.0, lambda a: a.T * 1.0, N(3, 4))
row("clone", lambda a: a.clone(), lambda a: a.clone(), T(3, 4))
row("getitem_int", lambda a: a[1], lambda a: a[1], N(3, 4))
row("getitem_slices", lambda a: a[1:, ::2], lambda a: a[1:, ::2], N(4, 5))
row("getitem_ellipsis_none", lambda a: a[..., None, 1:3], lambda a: a[..., None, 1:3], N(2, 4))
row("getitem_advanced_repeated", lambda a: a[np.array([0, 2, 0, 0])], lambda a: a[torch.tensor([0, 2, 0, 0])],
    N(3, 4))
row("getitem_advanced_pairs_repeated", lambda a: a[np.array([0, 1, 0]), np.array([2, 3, 2])],
    lambda a: a[torch.tensor([0, 1, 0]), torch.tensor([2, 3, 2])], N(3, 4))
row("getitem_bool_mask", lambda a: a[np.array([True, False, True])],
    lambda a: a[torch.tensor([True, False, True])], N(3, 4))
row("getitem_mixed", lambda a: a[1:, np.array([3, 0, 3])], lambda a: a[1:, torch.tensor([3, 0, 3])], T(3, 4))


def _set_slice(a, b):      # x[idx] = v on a non-leaf: SetItem (both libraries run these lines)
    y = a * 1
    y[1:, ::2] = b
    return y


def _set_mask(a, b):
    y = a * 1
    y[y > 0] = b
    return y


row("setitem_slice_broadcast", _set_slice, _set_slice, N(3, 4), N(2))
row("setitem_bool_mask_0d_value", _set_mask, _set_mask, N(3, 4), N())


def _through_views(a, b):  # in place through a view: the base's node is ViewScatter, an older view's ViewOf
    y = a * 1
    older = y[:, 1:]
    y[:, :2].mul_(b)
    return older.t() * y[:, 2:].sum()


row("inplace_through_views", _through_views, _through_views, N(3, 4), N(3, 2))
row("pad_last_dim", lambda a: F.pad(a, (1, 2)), lambda a: TF.pad(a, (1, 2)), N(2, 3))
row("pad_2d_value", lambda a: F.pad(a, (1, 0, 2, 1), value=0.5), lambda a: TF.pad(a, (1, 0, 2, 1), value=0.5),
    T(2, 3, 4))
row("cat_dim0", lambda a, b: F.cat([a, b], 0), lambda a, b: torch.cat([a, b], 0), N(2, 3), N(1, 3))
row("cat_dim1_three", lambda a, b, c: F.cat([a, b, c], dim=1), lambda a, b, c: torch.cat([a, b, c], 1),
    N(2, 1), T(2, 3), N(2, 2))
row("stack", lambda a, b: F.stack([a, b], 1), lambda a, b: torch.stack([a, b], 1), N(2, 3), N(2, 3))

# ---- softmax family ----------------------------------------------------------------------
for dim in (1, -1, 0):
    row(f"softmax_dim{dim}", lambda a, d=dim: F.softmax(a, d), lambda a, d=dim: TF.softmax(a, d), N(3, 4, 2))
    row(f"log_softmax_dim{dim}", lambda a, d=dim: F.log_softmax(a, d), lambda a, d=dim: TF.log_softmax(a, d),
        N(3, 4, 2))
row("softmax_transposed", lambda a: F.softmax(a, 1), lambda a: TF.softmax(a, 1), T(4, 5))
row("log_softmax_size1", lambda a: F.log_softmax(a, 1), lambda a: TF.log_softmax(a, 1), N(3, 1))
row("softmax_large", lambda a: F.softmax(a, 1), lambda a: TF.softmax(a, 1), N(64, 10), full=False)


# ---- convolution -------------------------------------------------------------------------
def conv(stride=1, padding=0, dilation=1, groups=1):
    e = lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    t = lambda x, w, b=None: TF.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return e, t


row("conv2d_9x7_k3_s2_p1", *conv(2, 1), N(2, 3, 9, 7), N(4, 3, 3, 3), N(4))
row("conv2d_basic_no_bias", *conv(), N(1, 2, 5, 6), N(3, 2, 3, 3))
row("conv2d_nonsquare_kernel_stride", *conv((2, 1), (1, 2)), N(2, 2, 7, 6), N(3, 2, 2, 3), N(3))
row("conv2d_dilation", *conv(1, 1, (2, 1)), N(1, 2, 7, 6), N(2, 2, 3, 2), N(2))
row("conv2d_groups", *conv(1, 1, 1, 2), N(2, 4, 5, 5), N(6, 2, 3, 3), N(6))
row("conv2d_depthwise_s2", *conv(2, 0, 1, 3), N(1, 3, 7, 7), N(3, 1, 3, 3), N(3))
row("conv2d_1x1", *conv(), N(2, 3, 4, 5), N(2, 3, 1, 1), N(2))
row("conv2d_kernel_eq_input", *conv(), N(2, 2, 3, 3), N(4, 2, 3, 3), N(4))
row("conv2d_transposed_input", *conv(1, 1), lambda r: r.standard_normal((5, 6, 2, 2)).transpose(2, 3, 1, 0),
    N(3, 2, 3, 3), N(3))
row("conv2d_stride_gt_kernel", *conv(3, 0), N(1, 1, 8, 8), N(2, 1, 2, 2), N(2))
row("conv2d_lenet_c1", *conv(1, 2), N(2, 1, 28, 28), N(6, 1, 5, 5), N(6), full=False)
# 3×3, stride 1, ≥ 8 channels each way: the Winograd path (kernels.winograd); odd 7×5 output (a
# half tile), 10 output channels (not a multiple of 8), 9 input channels (not of 4), 3 images
row("conv2d_winograd_3x3_p1_odd", *conv(1, 1), N(3, 9, 7, 5), N(10, 9, 3, 3), N(10), full=False)


def pool(fe, ft, k, s=None, p=0):
    return (lambda x: fe(x, k, s, p)), (lambda x: ft(x, k, s, p))


row("max_pool2d_k2", *pool(F.max_pool2d, TF.max_pool2d, 2), N(2, 3, 6, 6))
row("max_pool2d_k3_s2_overlap_9x7", *pool(F.max_pool2d, TF.max_pool2d, 3, 2), N(2, 2, 9, 7))
row("max_pool2d_k3_s2_p1", *pool(F.max_pool2d, TF.max_pool2d, 3, 2, 1), N(1, 2, 9, 7))
row("max_pool2d_nonsquare", *pool(F.max_pool2d, TF.max_pool2d, (2, 3), (1, 2), (1, 1)), T(2, 2, 5, 7))
row("max_pool2d_s1_odd", *pool(F.max_pool2d, TF.max_pool2d, 2, 1), N(1, 1, 5, 3))
row("avg_pool2d_k2", *pool(F.avg_pool2d, TF.avg_pool2d, 2), N(2, 3, 6, 6))
row("avg_pool2d_k3_s2_p1_9x7", *pool(F.avg_pool2d, TF.avg_pool2d, 3, 2, 1), N(2, 2, 9, 7))
row("avg_pool2d_nonsquare", *pool(F.avg_pool2d, TF.avg_pool2d, (3, 2), (2, 1), (1, 0)), T(1, 2, 7, 5))
row("max_pool2d_dilated_ceil", lambda x: F.max_pool2d(x, (3, 2), (2, 1), (1, 1), (2, 3), ceil_mode=True),
    lambda x: TF.max_pool2d(x, (3, 2), (2, 1), (1, 1), (2, 3), ceil_mode=True), N(2, 2, 8, 7))
row("max_pool2d_ceil_partial_window", lambda x: F.max_pool2d(x, 2, ceil_mode=True),
    lambda x: TF.max_pool2d(x, 2, ceil_mode=True), N(1, 2, 5, 7))
row("avg_pool2d_ceil_no_pad_count", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: TF.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), N(2, 2, 6, 7))
row("avg_pool2d_divisor_override", lambda x: F.avg_pool2d(x, 2, 1, 1, divisor_override=3),
    lambda x: TF.avg_pool2d(x, 2, 1, 1, divisor_override=3), N(1, 2, 4, 5))
_UNPOOL_IDX = TF.max_pool2d(torch.from_numpy(np.random.default_rng(0).standard_normal((2, 2, 6, 7))), 2,
                            return_indices=True)[1]
row("adaptive_max_pool2d_overlapping_bins", lambda x: F.adaptive_max_pool2d(x, (3, 4)),
    lambda x: TF.adaptive_max_pool2d(x, (3, 4)), N(2, 2, 7, 6))
row("max_unpool2d", lambda x: F.max_unpool2d(x, Tensor(_UNPOOL_IDX.numpy()), 2, output_size=(6, 7)),
    lambda x: TF.max_unpool2d(x, _UNPOOL_IDX, 2, output_size=(6, 7)), N(2, 2, 3, 3))


# ---- losses ------------------------------------------------------------------------------
TGT = np.array([2, 0, 3, 3, 1])
for red in ("mean", "sum", "none"):
    row(f"cross_entropy_{red}", lambda z, r=red: F.cross_entropy(z, TGT, reduction=r),
        lambda z, r=red: TF.cross_entropy(z, torch.from_numpy(TGT), reduction=r), N(5, 4))
    row(f"nll_loss_{red}", lambda z, r=red: F.nll_loss(z, Tensor(TGT), reduction=r),
        lambda z, r=red: TF.nll_loss(z, torch.from_numpy(TGT), reduction=r), N(5, 4))
    row(f"mse_loss_{red}", lambda a, b, r=red: F.mse_loss(a, b, reduction=r),
        lambda a, b, r=red: TF.mse_loss(a, b, reduction=r), N(3, 4), T(3, 4))
    row(f"binary_cross_entropy_{red}", lambda p, r=red: F.binary_cross_entropy(p, Y01, reduction=r),
        lambda p, r=red: TF.binary_cross_entropy(p, torch.from_numpy(Y01).to(p.dtype), reduction=r),
        P(3, 4, lo=0.05, hi=0.95))
    row(f"binary_cross_entropy_target_grad_{red}", lambda p, y, r=red: F.binary_cross_entropy(p, y, reduction=r),
        lambda p, y, r=red: TF.binary_cross_entropy(p, y, reduction=r), P(3, 4, lo=0.05, hi=0.95),
        P(3, 4, lo=0.0, hi=1.0))
    row(f"bce_with_logits_{red}", lambda z, y, r=red: F.binary_cross_entropy_with_logits(z, y, reduction=r),
        lambda z, y, r=red: TF.binary_cross_entropy_with_logits(z, y, reduction=r),
        lambda r: 3 * r.standard_normal((3, 4)), P(3, 4, lo=0.0, hi=1.0))
Y01 = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0.3, 0.5, 1, 0]])
row("cross_entropy_transposed_logits", lambda z: F.cross_entropy(z, TGT), lambda z: TF.cross_entropy(
    z, torch.from_numpy(TGT)), T(5, 4))
row("cross_entropy_single_class", lambda z: F.cross_entropy(z, np.zeros(3, np.int64)),
    lambda z: TF.cross_entropy(z, torch.zeros(3, dtype=torch.int64)), N(3, 1))
row("cross_entropy_large", lambda z: F.cross_entropy(z, np.arange(64) % 10),
    lambda z: TF.cross_entropy(z, torch.arange(64) % 10), N(64, 10), full=False)
row("mse_loss_0d", lambda a, b: F.mse_loss(a, b), lambda a, b: TF.mse_loss(a, b), N(), N())

# ---- composite: a whole LeNet-style forward (dircheck + parity at a realistic size) --------------
row("lenet_block", lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=2)), 2),
    lambda x, w, b: TF.max_pool2d(TF.relu(TF.conv2d(x, w, b, padding=2)), 2),
    N(4, 1, 28, 28), N(6, 1, 5, 5), N(6), full=False)

# ---- ops added by the layers engineer (rows added only when the function exists) -------------
if hasattr(F, "conv1d"):
    def conv1(stride=1, padding=0, dilation=1, groups=1):
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        return (lambda x, w, b=None: F.conv1d(x, w, b, **kw)), (lambda x, w, b=None: TF.conv1d(x, w, b, **kw))
    row("conv1d_k3_s2_p1_odd", *conv1(2, 1), N(2, 3, 11), N(4, 3, 3), N(4))
    row("conv1d_dilation_groups", *conv1(1, 2, 2, 2), N(1, 4, 9), N(2, 2, 3))
if hasattr(F, "adaptive_avg_pool2d"):
    row("adaptive_avg_pool2d_overlapping_bins", lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
        lambda x: TF.adaptive_avg_pool2d(x, (3, 2)), N(2, 2, 7, 5))
    row("adaptive_avg_pool2d_1x1", lambda x: F.adaptive_avg_pool2d(x, 1), lambda x: TF.adaptive_avg_pool2d(x, 1),
        T(2, 3, 4, 4))
if hasattr(F, "locally_connected2d"):
    def _torch_local(x, w, b=None, stride=1, padding=0):
        OH, OW, C_out, C, KH, KW = w.shape
        cols = TF.unfold(x, (KH, KW), padding=padding, stride=stride)           # (N, K, L)
        y = torch.einsum("lok,nkl->nol", w.reshape(OH * OW, C_out, -1), cols)   # (N, C_out, L)
        y = y.reshape(x.shape[0], C_out, OH, OW)
        return y if b is None else y + b
    row("locally_connected2d_s2_p1", lambda x, w, b: F.locally_connected2d(x, w, b, 2, 1),
        lambda x, w, b: _torch_local(x, w, b, 2, 1), N(2, 2, 5, 4), N(3, 2, 3, 2, 3, 3), N(3, 3, 2))
    row("locally_connected2d_no_bias", lambda x, w: F.locally_connected2d(x, w),
        lambda x, w: _torch_local(x, w), N(1, 1, 4, 4), N(3, 3, 2, 1, 2, 2))
if hasattr(F, "dropout"):
    from ember.ops import norm as _norm
    MASK = np.random.default_rng(1).random((3, 4)) >= 0.3
    row("dropout_fixed_mask", lambda x: _norm.Dropout.apply(x, MASK, p=0.3),
        lambda x: x * torch.from_numpy(MASK).to(x.dtype) / 0.7, T(3, 4))
if hasattr(F, "batch_norm"):
    row("batch_norm_train_4d", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), N(3, 2, 3, 2), N(2), N(2))
    row("batch_norm_train_2d_no_affine", lambda x: F.batch_norm(x, None, None, training=True),
        lambda x: TF.batch_norm(x, None, None, training=True), T(4, 3))
    RM, RV = np.array([0.1, -0.2]), np.array([0.5, 2.0])
    row("batch_norm_eval", lambda x, w, b: F.batch_norm(x, Tensor(RM.astype(x.dtype)), Tensor(RV.astype(x.dtype)),
                                                       w, b, training=False),
        lambda x, w, b: TF.batch_norm(x, torch.from_numpy(RM).to(x.dtype), torch.from_numpy(RV).to(x.dtype),
                                      w, b, training=False), N(3, 2, 2, 2), N(2), N(2))
if hasattr(F, "layer_norm"):
    row("layer_norm_last_dim", lambda x, w, b: F.layer_norm(x, 4, w, b), lambda x, w, b: TF.layer_norm(x, (4,), w, b),
        N(3, 4), N(4), N(4))
    row("layer_norm_two_dims_no_affine", lambda x: F.layer_norm(x, (3, 2)), lambda x: TF.layer_norm(x, (3, 2)),
        T(2, 3, 2))

# ---- losses added by the optimizers/losses engineer (rows only when the function exists) ------
W4 = np.array([0.5, 2.0, 1.0, 0.25])
TGT_IGN = np.array([2, -100, 3, 3, 1])
PM1 = np.array([[1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0]])
if "weight" in inspect.signature(F.cross_entropy).parameters:
    row("cross_entropy_weight_ignore_index", lambda z: F.cross_entropy(z, TGT_IGN, weight=W4),
        lambda z: TF.cross_entropy(z, torch.from_numpy(TGT_IGN), weight=torch.from_numpy(W4).to(z.dtype)), N(5, 4))
    row("cross_entropy_label_smoothing_sum", lambda z: F.cross_entropy(z, TGT, label_smoothing=0.2, reduction="sum"),
        lambda z: TF.cross_entropy(z, torch.from_numpy(TGT), label_smoothing=0.2, reduction="sum"), T(5, 4))
    row("nll_loss_weight_ignore_index_none", lambda z: F.nll_loss(z, TGT_IGN, weight=W4, reduction="none"),
        lambda z: TF.nll_loss(z, torch.from_numpy(TGT_IGN), weight=torch.from_numpy(W4).to(z.dtype),
                              reduction="none"), N(5, 4))
    row("nll_loss_weight_mean", lambda z: F.nll_loss(z, TGT, weight=W4),
        lambda z: TF.nll_loss(z, torch.from_numpy(TGT), weight=torch.from_numpy(W4).to(z.dtype)), N(5, 4))
if hasattr(F, "l1_loss"):
    PROBS = np.random.default_rng(5).dirichlet(np.ones(4), 5)          # soft labels (N, C), rows sum to 1
    row("cross_entropy_probability_targets", lambda z: F.cross_entropy(z, PROBS.astype(z.dtype)),
        lambda z: TF.cross_entropy(z, torch.from_numpy(PROBS).to(z.dtype)), N(5, 4))
    row("cross_entropy_probability_targets_weight_smoothing_none",
        lambda z: F.cross_entropy(z, PROBS.astype(z.dtype), weight=W4, label_smoothing=0.1, reduction="none"),
        lambda z: TF.cross_entropy(z, torch.from_numpy(PROBS).to(z.dtype), weight=torch.from_numpy(W4).to(z.dtype),
                                   label_smoothing=0.1, reduction="none"), T(5, 4))
if hasattr(F, "multi_margin_loss"):
    for pp in (1, 2):
        row(f"multi_margin_loss_p{pp}", lambda z, pp=pp: F.multi_margin_loss(z, TGT, p=pp, margin=0.7),
            lambda z, pp=pp: TF.multi_margin_loss(z, torch.from_numpy(TGT), p=pp, margin=0.7), N(5, 4))
    row("multi_margin_loss_weight_none", lambda z: F.multi_margin_loss(z, TGT, weight=W4, reduction="none"),
        lambda z: TF.multi_margin_loss(z, torch.from_numpy(TGT), weight=torch.from_numpy(W4).to(z.dtype),
                                       reduction="none"), N(5, 4))
if hasattr(F, "l1_loss"):
    row("l1_loss", lambda a, b: F.l1_loss(a, b), lambda a, b: TF.l1_loss(a, b), N(3, 4), T(3, 4))
    row("smooth_l1_loss_beta", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5, reduction="sum"),
        lambda a, b: TF.smooth_l1_loss(a, b, beta=0.5, reduction="sum"), N(3, 4), N(3, 4))
    row("huber_loss_delta_none", lambda a, b: F.huber_loss(a, b, reduction="none", delta=0.8),
        lambda a, b: TF.huber_loss(a, b, reduction="none", delta=0.8), N(3, 4), N(3, 4))
if hasattr(F, "hinge_loss"):  # no torch twin: the formulas of deck 002 written in torch
    row("hinge_loss", lambda f: F.hinge_loss(f, PM1), lambda f: torch.clamp(
        1 - torch.from_numpy(PM1).to(f.dtype) * f, min=0).mean(), lambda r: 1.5 * r.standard_normal((3, 4)))
    row("hinge_loss_label_grad_sum", lambda f, y: F.hinge_loss(f, y, reduction="sum"),
        lambda f, y: torch.clamp(1 - y * f, min=0).sum(), N(3, 4), lambda r: PM1.copy(),
        full=False, fd=False)  # labels must stay ±1: no finite differences, torch parity only
    row("logistic_loss", lambda f: F.logistic_loss(f, PM1),
        lambda f: TF.softplus(-torch.from_numpy(PM1).to(f.dtype) * f).mean(), lambda r: 5 * r.standard_normal((3, 4)))

# Ops whose rows live in another test file (owner's tests). Each entry: class name -> test file.
# Keep this list explicit and commented; an op that is neither here nor in ROWS fails the
# coverage test below.
ROWS_ELSEWHERE: dict[str, str] = {}

IDS = [r.name for r in ROWS]
assert len(set(IDS)) == len(IDS), "duplicate row names"


def all_functions():
    """Every Function subclass defined in a module of ember.ops (imports every submodule)."""
    found = {}
    for info in pkgutil.walk_packages(ember.ops.__path__, "ember.ops."):
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, Function) and obj is not Function \
                    and obj.__module__ == mod.__name__ and not name.startswith("_"):  # _bases are no ops
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def ops_in_graph(out):
    seen, stack, ids = set(), [out], set()
    while stack:
        t = stack.pop()
        if t is None or t._ctx is None or id(t) in ids:
            continue
        ids.add(id(t))
        seen.add(t._ctx.fn)
        stack.extend(p for p in t._ctx.parents if isinstance(p, Tensor))
    return seen


@pytest.fixture(params=["reference", "fast"])
def path(request):
    """Run the test through the reference ops, then through the kernels (ember.kernels.use)."""
    with ember.kernels.use(request.param):
        yield request.param


def _graph_ops(r, dtype=np.float64):
    """The op classes in the graph of row r on its inputs, and the output and inputs."""
    ts = [Tensor(a, requires_grad=True) for a in r.arrays(dtype)]
    out = r.fn(*ts)
    return ops_in_graph(out), out, ts


def _rows_with_kernels():
    with ember.kernels.use("fast"):
        kernels = set(ember.kernels.kernels().values())
        return [r for r in ROWS if _graph_ops(r)[0] & kernels]


KERNEL_ROWS = _rows_with_kernels()


def test_every_op_has_a_row():
    covered = set()
    with ember.kernels.use("reference"):
        covered |= {op for r in ROWS for op in _graph_ops(r)[0]}
    covered_names = {f"{c.__module__}.{c.__qualname__}" for c in covered}
    missing = [n for n, cls in all_functions().items()
               if n not in covered_names and cls.__name__ not in ROWS_ELSEWHERE]
    assert not missing, (f"ops without a row in tests/test_ops.py: {', '.join(sorted(missing))}; add a row "
                         "(or, if its owner tests it elsewhere, an entry in ROWS_ELSEWHERE)")


def test_the_table_is_big():
    assert len(ROWS) >= 150


def test_every_kernel_has_a_row():
    with ember.kernels.use("fast"):
        covered = {op for r in KERNEL_ROWS for op in _graph_ops(r)[0]}
    missing = [k.__qualname__ for k in ember.kernels.kernels().values() if k not in covered]
    assert not missing, f"kernels without a row in tests/test_ops.py: {missing}"


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("r", KERNEL_ROWS, ids=lambda r: r.name)
def test_kernel_equals_reference(r, dtype, rtol):
    """The fast path and the reference op give the same forward and gradients (same inputs,
    same random upstream gradient)."""
    results = {}
    for mode in ("reference", "fast"):
        with ember.kernels.use(mode):
            ops, out, ts = _graph_ops(r, np.dtype(dtype))
            u = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
            out.backward(u)
            results[mode] = [out.numpy()] + [t.grad.numpy() if t.grad is not None else None for t in ts]
    assert any(op in set(ember.kernels.kernels().values()) for op in ops), "the fast run used no kernel"
    for k, (ref, fast) in enumerate(zip(results["reference"], results["fast"])):
        if ref is None:
            assert fast is None
            continue
        assert fast.dtype == ref.dtype, f"{r.name}: output/gradient {k} dtype {fast.dtype} != {ref.dtype}"
        scale = max(np.abs(ref).max(initial=0.0), 1e-30)
        np.testing.assert_allclose(fast, ref, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{r.name} [{dtype}]: kernel differs from reference in item {k} "
                                           "(0 = output, k = gradient of input k)")


@pytest.mark.parametrize("r", [r for r in ROWS if r.full], ids=lambda r: r.name)
def test_gradcheck(r, path):
    gradcheck(r.fn, r.arrays(), name=f"{r.name} [{path}]")


@pytest.mark.parametrize("r", [r for r in ROWS if r.fd], ids=lambda r: r.name)
def test_dircheck(r, path):
    dircheck(r.fn, r.arrays(), name=f"{r.name} [{path}]")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("r", ROWS, ids=lambda r: r.name)
def test_torch_parity(r, dtype, path):
    if dtype == "float32" and not r.f32:
        pytest.skip("float64-only row")
    dt = np.dtype(dtype)
    torch_parity(r.fn, r.tfn, r.arrays(dt), name=f"{r.name} [{dtype}, {path}]",
                 rtol=None if dt == np.float64 else r.rtol32)


# ---- the checkers themselves must catch wrong gradients -------------------------------------
class _WrongMul(Function):
    """y = a * b with grad_b deliberately wrong (uses b instead of a)."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g * b, g * b


_WrongMul.__module__ = "tests.fake"  # not an ember op: keep it out of the coverage test


def test_checkers_catch_a_wrong_gradient():
    arrays = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.5, -1.0], [2.0, 0.25]])]
    with pytest.raises(GradcheckError, match=r"wrong_mul: Jacobian mismatch for output 0 with respect "
                                             r"to input 1: worst element .* analytical .*, numerical"):
        gradcheck(_WrongMul.apply, arrays, name="wrong_mul")
    with pytest.raises(GradcheckError, match="wrong_mul: directional derivative mismatch with respect to input 1"):
        dircheck(_WrongMul.apply, arrays, name="wrong_mul")
    with pytest.raises(GradcheckError, match=r"wrong_mul: gradient of input 1 differs from torch: worst element"):
        torch_parity(_WrongMul.apply, lambda a, b: a * b, arrays, name="wrong_mul")
    gradcheck(lambda a, b: a * b, arrays, name="mul")  # and pass a right one


def test_col2im_adds_overlapping_windows(path):
    """A col2im that assigned instead of added would give 1 at pixels read by several windows."""
    x = Tensor(np.zeros((1, 1, 5, 5)), requires_grad=True)
    w = Tensor(np.ones((1, 1, 3, 3)))
    F.conv2d(x, w, stride=1).sum().backward()
    tx = torch.zeros(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    TF.conv2d(tx, torch.ones(1, 1, 3, 3, dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    assert x.grad.numpy()[0, 0, 2, 2] == 9


# ---- max-pool ties: the whole gradient goes to the FIRST max in row-major order, as torch -------
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), 0)])
def test_max_pool2d_ties_go_to_first_max_exactly_as_torch(k, s, p, path):
    rng = np.random.default_rng(0)
    x = np.zeros((2, 2, 9, 7))
    x[0, 0, 3:, 2:] = 1.0                         # constant plateau: every window inside is a tie
    x[1] = np.round(rng.uniform(0, 2, (2, 9, 7)))  # after-ReLU style small ints: many ties
    # integer upstream gradients: sums over overlapping windows are exact in any order, so the
    # comparison is exact and tests only WHERE each window's gradient goes
    u = rng.integers(-8, 9, TF.max_pool2d(torch.from_numpy(x), k, s, p).shape).astype(np.float64)
    ex = Tensor(x.copy(), requires_grad=True)
    F.max_pool2d(ex, k, s, p).backward(u)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    TF.max_pool2d(tx, k, s, p).backward(torch.from_numpy(u))
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


def test_max_pool2d_constant_input_sends_each_window_to_its_top_left(path):
    x = Tensor(np.full((1, 1, 4, 4), 3.0), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    expect = np.zeros((4, 4))
    expect[::2, ::2] = 1
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expect)


def test_max_full_reduction_splits_ties_evenly_as_torch():
    x = np.array([[1.0, 3.0], [3.0, 3.0]])
    ex = Tensor(x, requires_grad=True)
    ex.max().backward()
    tx = torch.from_numpy(x).requires_grad_(True)
    tx.max().backward()
    np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


def test_max_dim_ties_go_to_first_index_as_torch():
    x = np.array([[2.0, 2.0, 1.0], [0.0, 5.0, 5.0]])
    ex = Tensor(x, requires_grad=True)
    v, i = ex.max(1)
    v.backward(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(ex.grad.numpy(), [[1, 0, 0], [0, 2, 0]])
    np.testing.assert_array_equal(i.numpy(), torch.from_numpy(x).max(1).indices.numpy())


def test_float32_stays_float32(path):
    """No silent promotion: float32 inputs give float32 outputs and gradients in every row."""
    bad = []
    for r in ROWS:
        if not r.f32 or r.name.startswith("cast"):  # casts change the dtype on purpose
            continue
        ts = [Tensor(a, requires_grad=True) for a in r.arrays(np.float32)]
        out = r.fn(*ts)
        out.backward(np.ones(out.shape, np.float32))
        if out.dtype != np.float32 or any(t.grad is not None and t.grad.dtype != np.float32 for t in ts):
            bad.append(r.name)
    assert not bad, f"rows that leave float32: {bad}"


# ---- choosing the path: ember.kernels.dispatch / use / EMBER_KERNELS -----------------------------
def test_dispatch_follows_use_and_restores_the_previous_mode():
    from ember.kernels import conv as kconv, gemm_conv
    from ember.ops import conv as rconv
    fast = gemm_conv.Conv2d if gemm_conv.AVAILABLE else kconv.Conv2d     # by shape, when numba imports
    with ember.kernels.use("fast"):
        assert ember.kernels.dispatch(rconv.Conv2d) is fast
        with ember.kernels.use("reference"):
            assert ember.kernels.mode() == "reference"
            assert ember.kernels.dispatch(rconv.Conv2d) is rconv.Conv2d
        assert ember.kernels.dispatch(rconv.Conv2d) is fast
        assert ember.kernels.dispatch(ew.Add) is ew.Add            # no kernel: the op itself
        assert issubclass(fast, rconv.Conv2d)                       # a kernel IS its reference op


def test_use_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match=r"kernels.use must be 'fast' or 'reference', got 'turbo'"):
        ember.kernels.use("turbo")


@pytest.mark.parametrize("value,expect", [("reference", "reference"), ("fast", "fast"), ("", "fast")])
def test_EMBER_KERNELS_is_read_at_import(value, expect):
    import os
    import subprocess
    import sys
    env = dict(os.environ, EMBER_KERNELS=value)
    out = subprocess.run([sys.executable, "-c", "import ember; print(ember.kernels.mode())"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expect


def test_EMBER_KERNELS_with_a_bad_value_says_so():
    import os
    import subprocess
    import sys
    env = dict(os.environ, EMBER_KERNELS="numba")
    out = subprocess.run([sys.executable, "-c", "import ember"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "EMBER_KERNELS must be 'fast' or 'reference', got 'numba'" in out.stderr
