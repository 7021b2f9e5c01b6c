"""PyTorch's API breadth (issue 12 groups 4–6): Tensor methods, creation functions and
module-level functions of ``ember/_api``, each checked against torch 2.13 on the same inputs —
values, dtypes, every input gradient under a random upstream gradient, and error types."""
import math

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _e(a, grad=True):
    return ember.tensor(a, requires_grad=grad and a.dtype.kind == "f")


def _t(a, grad=True):
    return torch.tensor(a, requires_grad=grad and a.dtype.kind == "f")


def _flat(out):
    return list(out) if isinstance(out, tuple) else [out]


def parity(efn, tfn, *arrays, rtol=1e-7, atol=1e-9, grad=True):
    """Run efn on ember tensors and tfn on torch tensors made from the same arrays; compare
    every output (values, dtype, shape) and, for float outputs, every input gradient under a
    random upstream gradient."""
    es, ts = [_e(a, grad) for a in arrays], [_t(a, grad) for a in arrays]
    eo, to = _flat(efn(*es)), _flat(tfn(*ts))
    assert len(eo) == len(to)
    rng = np.random.default_rng(0)
    e_loss, t_loss = 0, 0
    for e, t in zip(eo, to):
        tn = t.detach().numpy()
        assert e.shape == tuple(t.shape), (e.shape, t.shape)
        assert e.dtype == tn.dtype, (e.dtype, tn.dtype)
        np.testing.assert_allclose(e.numpy(), tn, rtol=rtol, atol=atol)
        if grad and t.requires_grad:
            g = rng.standard_normal(tn.shape)
            e_loss = e_loss + (e * ember.tensor(g.astype(tn.dtype))).sum()
            t_loss = t_loss + (t * torch.tensor(g.astype(tn.dtype))).sum()
    if grad and isinstance(t_loss, torch.Tensor):
        e_loss.backward()
        t_loss.backward()
        for e, t in zip(es, ts):
            if t.requires_grad:
                tg = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
                eg = np.zeros(t.shape) if e.grad is None else e.grad.numpy()
                np.testing.assert_allclose(eg, tg, rtol=rtol, atol=atol)


R = np.random.default_rng(12)
A = R.standard_normal((3, 4))
B = R.standard_normal((3, 4))
S = R.standard_normal((4, 5))
V = R.standard_normal(4)
P = R.uniform(0.5, 2.0, (3, 4))
Z = np.array([[1.0, 0.0, 2.0], [3.0, -1.0, 0.0], [0.0, 0.0, 4.0]])      # zeros: prod's gradient
TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 2.0]])


METHODS = [
    ("pow_scalar", lambda a: a.pow(3), A), ("pow_tensor", lambda a, b: a.pow(b), P, B),
    ("mul", lambda a, b: a.mul(b), A, B), ("add_alpha", lambda a, b: a.add(b, alpha=2.5), A, B),
    ("sub_alpha", lambda a, b: a.sub(b, alpha=-0.5), A, B), ("div", lambda a, b: a.div(b), A, P),
    ("neg", lambda a: a.neg(), A), ("square", lambda a: a.square(), A),
    ("sin", lambda a: a.sin(), A), ("cos", lambda a: a.cos(), A), ("rsqrt", lambda a: a.rsqrt(), P),
    ("mm", lambda a, b: a.mm(b), A, S), ("bmm", lambda a, b: a.bmm(b), A.reshape(3, 1, 4), S[None].repeat(3, 0)),
    ("view_as", lambda a, b: a.view_as(b), A, A.reshape(2, 6)), ("reshape_as", lambda a, b: a.reshape_as(b), A, A.reshape(12)),
    ("expand", lambda a: a.expand(2, 3, 4), A[:, :1].repeat(4, 1)),
    ("expand_size1_and_minus1", lambda a: a.expand(2, -1, 5), A[:, :1]),
    ("expand_as", lambda a, b: a.expand_as(b), V, A),
    ("repeat", lambda a: a.repeat(2, 3), A), ("repeat_new_dims", lambda a: a.repeat(2, 1, 2), V),
    ("contiguous", lambda a: a.t().contiguous(), A),
    ("chunk", lambda a: a.chunk(3, 1), A), ("split_int", lambda a: a.split(3, 1), A),
    ("split_sections", lambda a: a.split([1, 2], 0), A),
    ("std", lambda a: a.std(), A), ("std_dim", lambda a: a.std(1), A), ("std_unbiased_false", lambda a: a.std(0, False), A),
    ("var_keepdim", lambda a: a.var(1, keepdim=True), A), ("var_correction0", lambda a: a.var(dim=(0, 1), correction=0), A),
    ("norm", lambda a: a.norm(), A), ("norm_dim", lambda a: a.norm(dim=1), A), ("norm_p1", lambda a: a.norm(1), A),
    ("norm_p3_keepdim", lambda a: a.norm(3, dim=0, keepdim=True), A), ("norm_inf", lambda a: a.norm(float("inf")), A),
    ("prod", lambda a: a.prod(), P), ("prod_dim_zeros", lambda a: a.prod(1), Z),
    ("prod_dim0_keepdim_zeros", lambda a: a.prod(0, keepdim=True), Z), ("prod_odd", lambda a: a.prod(-1), S),
    ("cumsum", lambda a: a.cumsum(1), A), ("cumsum_dim0", lambda a: a.cumsum(dim=0), A),
    ("topk", lambda a: a.topk(2), A), ("topk_smallest_dim0", lambda a: a.topk(2, dim=0, largest=False), A),
    ("sort", lambda a: a.sort(), A), ("sort_descending_ties", lambda a: a.sort(1, descending=True), TIES),
    ("sort_ties", lambda a: a.sort(dim=1), TIES), ("argsort", lambda a: a.argsort(dim=0, descending=True), A),
    ("argmin", lambda a: a.argmin(), A), ("argmin_dim", lambda a: a.argmin(1, keepdim=True), A),
    ("clip", lambda a: a.clip(-0.5, 0.5), A),
    ("gather", lambda a, i: a.gather(1, i), A, np.array([[0, 3], [2, 2], [1, 0]])),
    ("index_select", lambda a, i: a.index_select(1, i), A, np.array([3, 0, 3])),
    ("eq", lambda a, b: a.eq(b), TIES, TIES[::-1].copy()), ("ne", lambda a, b: a.ne(b), TIES, TIES[::-1].copy()),
    ("gt", lambda a, b: a.gt(b), A, B), ("lt", lambda a, b: a.lt(b), A, B), ("ge", lambda a, b: a.ge(b), TIES, TIES[::-1].copy()),
    ("le_scalar", lambda a: a.le(0.0), A), ("any", lambda a: (a > 1).any(), A), ("all_dim", lambda a: (a > -1).all(1), A),
    ("any_keepdim", lambda a: (a > 1).any(0, keepdim=True), A),
    ("div_floor_int", lambda a, b: a.div(b, rounding_mode="floor"), np.array([7, -7, 9]), np.array([2, 2, -4])),
    ("abs_builtin", lambda a: abs(a), A), ("trace", lambda a: a.trace(), A), ("diag_vec", lambda a: a.diag(1), V),
    ("diag_vec_neg", lambda a: a.diag(-2), V), ("diag_mat", lambda a: a.diag(-1), A), ("diag_mat_pos", lambda a: a.diag(2), A),
    ("tril", lambda a: a.tril(), A), ("triu_k", lambda a: a.triu(1), A), ("tril_3d", lambda a: a.tril(-1), A.reshape(3, 2, 2)),
    ("flip", lambda a: a.flip(0, 1), A), ("flip_neg", lambda a: a.flip(-1), A),
    ("tan", lambda a: a.tan(), A), ("floor", lambda a: a.floor(), A * 3), ("ceil", lambda a: a.ceil(), A * 3),
    ("sign", lambda a: a.sign(), A), ("round", lambda a: a.round(), np.array([0.5, 1.5, -2.5, 2.4, -0.6])),
    ("round_decimals", lambda a: a.round(decimals=2), A), ("floor_int", lambda a: a.floor(), np.array([3, -2])),
    ("lerp", lambda a, b: a.lerp(b, 0.3), A, B), ("lerp_tensor_weight", lambda a, b, w: a.lerp(b, w), A, B, P),
    ("roll", lambda a: a.roll(1, 1), A), ("roll_flat", lambda a: a.roll(-5), A), ("roll_two", lambda a: a.roll((1, -2), (0, 1)), A),
    ("repeat_interleave", lambda a: a.repeat_interleave(2, dim=1), A), ("repeat_interleave_flat", lambda a: a.repeat_interleave(3), A),
    ("nonzero", lambda a: a.nonzero(), Z), ("unique", lambda a: a.unique(return_inverse=True, return_counts=True),
                                            np.array([[3, 1], [3, 2]])),
]


@pytest.mark.parametrize("name,fn,arrays", [(m[0], m[1], m[2:]) for m in METHODS], ids=[m[0] for m in METHODS])
def test_tensor_method_matches_torch(name, fn, arrays):
    parity(fn, fn, *arrays)


def test_rounding_division_matches_torch_values():
    """Rounded quotients are outside ember's graph (torch's gradient there is 0 everywhere)."""
    parity(lambda a, b: a.div(b, rounding_mode="trunc"), lambda a, b: a.div(b, rounding_mode="trunc"), A, P, grad=False)
    parity(lambda a: a.div(2, rounding_mode="floor"), lambda a: a.div(2, rounding_mode="floor"), np.array([5, -5]))


def test_masked_fill_matches_torch():
    mask = A > 0
    parity(lambda a: a.masked_fill(ember.tensor(mask), -1.0), lambda a: a.masked_fill(torch.tensor(mask), -1.0), A)


def test_float32_methods_keep_float32():
    x = ember.tensor(A.astype(np.float32))
    for out in (x.std(), x.var(1), x.norm(), x.prod(1), x.cumsum(0), x.sin(), x.topk(2).values, x.repeat(2, 1),
                x.expand(2, 3, 4), x.pow(2), x.square()):
        assert out.dtype == np.float32


def test_integer_results_match_torch_dtypes():
    x = np.array([[3, 1, 2], [0, 5, 4]])
    for fn in (lambda t: t.cumsum(1), lambda t: t.prod(1), lambda t: t.prod(), lambda t: t.sort()[0],
               lambda t: t.argsort(), lambda t: (t > 1).cumsum(0), lambda t: t.repeat(2, 1)):
        e, t = fn(ember.tensor(x)), fn(torch.tensor(x))
        assert e.dtype == t.numpy().dtype and np.array_equal(e.numpy(), t.numpy())


def test_norm_of_zeros_has_zero_gradient_as_torch():
    x = ember.zeros(3, requires_grad=True)
    x.norm().backward()
    assert np.array_equal(x.grad.numpy(), np.zeros(3))


@pytest.mark.parametrize("call,exc", [
    (lambda e: e.ones(2, 3).mm(e.ones(2, 3)), RuntimeError), (lambda e: e.ones(2, 3, 4).mm(e.ones(4, 2)), RuntimeError),
    (lambda e: e.ones(2, 3).bmm(e.ones(3, 2)), RuntimeError), (lambda e: e.ones(2, 3).expand(3, 3), RuntimeError),
    (lambda e: e.ones(2, 3).expand(3), RuntimeError), (lambda e: e.ones(2, 3).repeat(2), RuntimeError),
    (lambda e: e.ones(4).topk(5), RuntimeError), (lambda e: e.ones(3).split([1, 1], 0), RuntimeError),
    (lambda e: e.ones(3).chunk(0), RuntimeError), (lambda e: e.ones(3).cumsum(1), IndexError),
    (lambda e: e.tensor([1, 2]).std(), RuntimeError), (lambda e: e.ones(2).div(e.ones(2), rounding_mode="x"), RuntimeError),
    (lambda e: e.ones(3).masked_fill(e.ones(3), 0.0), RuntimeError),
])
def test_bad_calls_raise_torch_error_types(call, exc):
    with pytest.raises(exc):
        call(torch)
    with pytest.raises(exc):
        call(ember)


# ---- creation functions --------------------------------------------------------------------------
CREATION = [
    lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-2.5, 3, 7, dtype=m.float64), lambda m: m.linspace(0, 10, 4,
                                                                                                       dtype=m.int64),
    lambda m: m.linspace(1, 1, 1), lambda m: m.linspace(0, 1, 0), lambda m: m.logspace(0, 2, 3),
    lambda m: m.logspace(0, 3, 4, base=2.0), lambda m: m.full((2, 3), 1.5), lambda m: m.full((2,), 7),
    lambda m: m.full((2,), True), lambda m: m.full((2, 2), 3, dtype=m.float64), lambda m: m.eye(3),
    lambda m: m.eye(2, 4, dtype=m.int64), lambda m: m.empty(2, 3).shape, lambda m: m.empty((2, 3), dtype=m.float64).dtype,
    lambda m: m.zeros_like(m.ones(2, 3, dtype=m.float64)), lambda m: m.ones_like(m.tensor([1, 2])),
    lambda m: m.full_like(m.tensor([1.0, 2.0]), 4), lambda m: m.zeros_like(m.tensor([1, 2]), dtype=m.float32),
    lambda m: m.empty_like(m.tensor([[1, 2]])).shape, lambda m: m.rand_like(m.ones(2, 3)).shape,
    lambda m: m.randn_like(m.ones(4, dtype=m.float64)).dtype, lambda m: m.randint(0, 5, (3, 2)).dtype,
    lambda m: m.randint(5, (4,)).shape, lambda m: m.randperm(6).dtype,
    lambda m: m.zeros_like(m.ones(2), device="cpu").shape, lambda m: m.randn_like(m.ones(3), requires_grad=True).requires_grad,
]


def _norm(x):
    if isinstance(x, (torch.Tensor, ember.Tensor)):
        return str(x.numpy().dtype), x.numpy().tolist()
    if isinstance(x, torch.dtype):
        return str(torch.empty(0, dtype=x).numpy().dtype)
    return str(np.dtype(x)) if isinstance(x, np.dtype) else tuple(x) if isinstance(x, tuple) or \
        type(x).__name__ == "Size" else x


@pytest.mark.parametrize("i", range(len(CREATION)))
def test_creation_matches_torch(i):
    e, t = _norm(CREATION[i](ember)), _norm(CREATION[i](torch))
    if isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], list):
        assert e[0] == t[0]
        np.testing.assert_allclose(np.array(e[1], dtype=float), np.array(t[1], dtype=float), rtol=1e-6, atol=1e-7)
    else:
        assert e == t


def test_random_creation_values():
    ember.manual_seed(0)
    r = ember.randint(3, 7, (1000,)).numpy()
    assert r.min() == 3 and r.max() == 6
    p = ember.randperm(50).numpy()
    assert sorted(p.tolist()) == list(range(50))
    u = ember.rand_like(ember.ones(2000, dtype=ember.float64)).numpy()
    assert u.dtype == np.float64 and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.05
    ember.manual_seed(1)
    a = ember.randn_like(ember.ones(5)).numpy()
    ember.manual_seed(1)
    assert np.array_equal(a, ember.randn_like(ember.ones(5)).numpy())


@pytest.mark.parametrize("call,exc", [
    (lambda m: m.randint(5, 5, (2,)), RuntimeError), (lambda m: m.randperm(-1), RuntimeError),
    (lambda m: m.linspace(0, 1, -1), RuntimeError), (lambda m: m.full((2,), 1, requires_grad=True), RuntimeError),
    (lambda m: m.rand_like(m.tensor([1, 2])), RuntimeError), (lambda m: m.randn_like(m.tensor([1, 2])), RuntimeError),
    (lambda m: m.zeros_like([1.0]), TypeError), (lambda m: m.empty(-1), RuntimeError),
    (lambda m: m.full((2,), 1.0, device="nonsense"), RuntimeError),
])
def test_creation_errors_match_torch(call, exc):
    with pytest.raises(exc):
        call(torch)
    with pytest.raises(exc):
        call(ember)


def test_cuda_device_is_refused_clearly():
    with pytest.raises(RuntimeError, match="CPU only"):
        ember.linspace(0, 1, 3, device="cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        ember.zeros_like(ember.ones(2), device="cuda:0")


# ---- module-level functions ----------------------------------------------------------------------
FUNCTIONS = [
    ("sin", lambda m, a: m.sin(a), A), ("cos", lambda m, a: m.cos(a), A), ("exp", lambda m, a: m.exp(a), A),
    ("log", lambda m, a: m.log(a), P), ("sqrt", lambda m, a: m.sqrt(a), P), ("abs", lambda m, a: m.abs(a), A),
    ("tanh", lambda m, a: m.tanh(a), A), ("sigmoid", lambda m, a: m.sigmoid(a), A), ("relu", lambda m, a: m.relu(a), A),
    ("matmul", lambda m, a, b: m.matmul(a, b), A, S), ("mm", lambda m, a, b: m.mm(a, b), A, S),
    ("max_all", lambda m, a: m.max(a), A), ("max_dim", lambda m, a: m.max(a, 1), A),
    ("max_dim_keepdim", lambda m, a: m.max(a, dim=0, keepdim=True), A), ("max_pair", lambda m, a, b: m.max(a, b), A, B),
    ("min_all", lambda m, a: m.min(a), A), ("min_dim", lambda m, a: m.min(a, 1), A),
    ("min_pair", lambda m, a, b: m.min(a, b), A, B), ("maximum_ties", lambda m, a, b: m.maximum(a, b), TIES, TIES[::-1].copy()),
    ("minimum_broadcast", lambda m, a, b: m.minimum(a, b), A, V),
    ("argmax", lambda m, a: m.argmax(a), A), ("argmax_dim", lambda m, a: m.argmax(a, dim=1), A),
    ("sum", lambda m, a: m.sum(a), A), ("sum_dim", lambda m, a: m.sum(a, 1, keepdim=True), A),
    ("mean_dim", lambda m, a: m.mean(a, dim=0), A), ("flatten", lambda m, a: m.flatten(a), A.reshape(3, 2, 2)),
    ("flatten_start", lambda m, a: m.flatten(a, 1), A.reshape(3, 2, 2)),
    ("where", lambda m, a, b: m.where(a > 0, a, b), A, B), ("where_scalar", lambda m, a: m.where(a > 0, a, 0.0), A),
    ("clamp", lambda m, a: m.clamp(a, min=-0.3, max=0.4), A), ("clamp_min", lambda m, a: m.clamp(a, -0.2), A),
    ("einsum_matmul", lambda m, a, b: m.einsum("ij,jk->ik", a, b), A, S),
    ("einsum_trace_free_sum", lambda m, a: m.einsum("ij->", a), A),
    ("einsum_transpose", lambda m, a: m.einsum("ij->ji", a), A),
    ("einsum_implicit", lambda m, a, b: m.einsum("ij,kj", a, b), A, B),
    ("einsum_batched_list", lambda m, a, b: m.einsum("bij,bjk->bik", [a, b]), A.reshape(3, 1, 4), S[None].repeat(3, 0)),
    ("einsum_three", lambda m, a, b, c: m.einsum("i,ij,j->", a, b, c), A[:, 0].copy(), A, V),
    ("einsum_outer_ellipsis", lambda m, a, b: m.einsum("...i,j->...ij", a, b), A, V),
    ("einsum_bilinear", lambda m, a, w, b: m.einsum("bi,oij,bj->bo", a, w, b), A, R.standard_normal((2, 4, 4)), B),
    ("einsum_diagonal", lambda m, a: m.einsum("ii->i", a), R.standard_normal((4, 4))),
    ("einsum_trace", lambda m, a: m.einsum("ii", a), R.standard_normal((4, 4))),
    ("einsum_diagonal_summed", lambda m, a: m.einsum("iij->j", a), R.standard_normal((3, 3, 2))),
    ("einsum_batched_diagonal", lambda m, a: m.einsum("bii->bi", a), R.standard_normal((2, 3, 3))),
    ("einsum_split_diagonal", lambda m, a: m.einsum("iji->ij", a), R.standard_normal((3, 2, 3))),
    ("einsum_diagonal_times", lambda m, a, b: m.einsum("ii,i->i", a, b), R.standard_normal((4, 4)), V),
    ("einsum_triple", lambda m, a: m.einsum("iii->i", a), R.standard_normal((2, 2, 2))),
    ("mul", lambda m, a, b: m.mul(a, b), A, B), ("add", lambda m, a, b: m.add(a, b, alpha=2), A, B),
    ("sub", lambda m, a, b: m.sub(a, b), A, B), ("div", lambda m, a, b: m.div(a, b), A, P),
    ("pow", lambda m, a: m.pow(a, 2), A), ("neg", lambda m, a: m.neg(a), A), ("square", lambda m, a: m.square(a), A),
    ("isnan", lambda m, a: m.isnan(a), np.array([1.0, np.nan, np.inf])),
    ("isinf", lambda m, a: m.isinf(a), np.array([1.0, np.nan, -np.inf])),
    ("isfinite", lambda m, a: m.isfinite(a), np.array([1.0, np.nan, np.inf])),
    ("isclose", lambda m, a, b: m.isclose(a, b), A, A + 1e-9),
    ("std", lambda m, a: m.std(a, dim=1), A), ("var", lambda m, a: m.var(a), A), ("prod", lambda m, a: m.prod(a, 1), Z),
    ("cumsum", lambda m, a: m.cumsum(a, dim=0), A), ("sort", lambda m, a: m.sort(a, descending=True), A),
    ("topk", lambda m, a: m.topk(a, 3), A), ("norm", lambda m, a: m.norm(a), A), ("dot", lambda m, a, b: m.dot(a, b), V, V),
    ("outer", lambda m, a, b: m.outer(a, b), V, A[0].copy()), ("logsumexp", lambda m, a: m.logsumexp(a, 1), A * 50),
    ("logsumexp_keepdim", lambda m, a: m.logsumexp(a, dim=0, keepdim=True), A),
    ("softmax", lambda m, a: m.softmax(a, 1), A), ("log_softmax", lambda m, a: m.log_softmax(a, dim=0), A),
    ("transpose", lambda m, a: m.transpose(a, 0, 1), A), ("reshape", lambda m, a: m.reshape(a, (2, 6)), A),
    ("squeeze_unsqueeze", lambda m, a: m.squeeze(m.unsqueeze(a, 0)), A), ("permute", lambda m, a: m.permute(a, (1, 0)), A),
    ("t", lambda m, a: m.t(a), A), ("masked_select", lambda m, a: m.masked_select(a, a > 0), A),
    ("gather", lambda m, a, i: m.gather(a, 0, i), A, np.array([[2, 0, 1, 1]])),
    ("index_select", lambda m, a, i: m.index_select(a, 0, i), A, np.array([2, 2])),
    ("split", lambda m, a: m.split(a, 2, 1), A), ("chunk", lambda m, a: m.chunk(a, 2), A),
    ("any", lambda m, a: m.any(a > 2), A), ("all", lambda m, a: m.all(a > -3), A),
    ("eq", lambda m, a, b: m.eq(a, b), TIES, TIES[::-1].copy()), ("ge", lambda m, a: m.ge(a, 0.0), A),
    ("concat", lambda m, a, b: m.concat([a, b], 1), A, B), ("argsort", lambda m, a: m.argsort(a), A),
    ("argmin", lambda m, a: m.argmin(a, 0), A), ("rsqrt", lambda m, a: m.rsqrt(a), P),
    ("flip", lambda m, a: m.flip(a, (1,)), A), ("tril", lambda m, a: m.tril(a, -1), A), ("diag", lambda m, a: m.diag(a), V),
    ("triu", lambda m, a: m.triu(a), A), ("trace", lambda m, a: m.trace(a), A),
    ("as_tensor", lambda m, a: m.as_tensor(a) * 2, A), ("as_tensor_list", lambda m: m.as_tensor([1, 2.5]) * 1),
    ("broadcast_tensors", lambda m, a, b: m.broadcast_tensors(a, b), V, A[:, :1].copy()),
    ("meshgrid_ij", lambda m, a, b: m.meshgrid(a, b, indexing="ij"), V, A[0, :3].copy()),
    ("meshgrid_xy", lambda m, a, b: m.meshgrid(a, b, indexing="xy"), V, A[0, :3].copy()),
    ("hstack", lambda m, a, b: m.hstack([a, b]), A, B), ("hstack_1d", lambda m, a: m.hstack([a, a]), V),
    ("vstack", lambda m, a, b: m.vstack([a, b]), V, V), ("bincount", lambda m, a: m.bincount(a, minlength=6), np.array([0, 2, 2, 4])),
    ("floor", lambda m, a: m.floor(a), A), ("round", lambda m, a: m.round(a, decimals=1), A), ("tan", lambda m, a: m.tan(a), A),
    ("lerp", lambda m, a, b: m.lerp(a, b, 0.75), A, B), ("roll", lambda m, a: m.roll(a, 2, 0), A),
    ("nonzero_tuple", lambda m, a: m.nonzero(a, as_tuple=True), Z), ("unique", lambda m, a: m.unique(a), np.array([2, 1, 2])),
    ("repeat_interleave", lambda m, a: m.repeat_interleave(a, m.tensor([1, 0, 2]), dim=0), A),
]


@pytest.mark.parametrize("name,fn,arrays", [(f[0], f[1], f[2:]) for f in FUNCTIONS], ids=[f[0] for f in FUNCTIONS])
def test_module_function_matches_torch(name, fn, arrays):
    parity(lambda *xs: fn(ember, *xs), lambda *xs: fn(torch, *xs), *arrays)


def test_maximum_propagates_nan_as_torch():
    a, b = np.array([1.0, np.nan, 2.0, -np.inf]), np.array([np.nan, 0.0, 1.0, 1.0])
    e = ember.maximum(ember.tensor(a), ember.tensor(b)).numpy()
    np.testing.assert_array_equal(e, torch.maximum(torch.tensor(a), torch.tensor(b)).numpy())


def test_predicates_return_python_values():
    a = ember.tensor([1.0, 2.0])
    assert ember.allclose(a, a + 1e-9) is True and ember.allclose(a, a + 1) is False
    assert ember.equal(a, ember.tensor([1.0, 2.0])) is True and ember.equal(a, ember.tensor([1.0])) is False
    assert ember.is_tensor(a) and not ember.is_tensor(np.ones(2)) and ember.numel(ember.ones(2, 3)) == 6
    nan = ember.tensor([float("nan")])
    assert ember.allclose(nan, nan) is False and ember.allclose(nan, nan, equal_nan=True) is True


def test_function_errors_match_torch_types():
    for call, exc in ((lambda m: m.allclose(m.ones(2), m.ones(2, dtype=m.float64)), RuntimeError),
                      (lambda m: m.where(m.ones(2), m.ones(2), m.zeros(2)), RuntimeError),
                      (lambda m: m.sin([1.0]), TypeError),
                      (lambda m: m.dot(m.ones(2, 2), m.ones(2, 2)), RuntimeError)):
        with pytest.raises(exc):
            call(torch)
        with pytest.raises(exc):
            call(ember)
    with pytest.raises(ValueError, match="operands"):
        ember.einsum("ij,jk->ik", ember.ones(2, 2))
    for m in (torch, ember):          # a repeated index takes a diagonal: its sizes must agree
        with pytest.raises(RuntimeError) as info:
            m.einsum("ii->i", m.ones(2, 3))
        assert str(info.value) == "einsum(): subscript i is repeated for operand 0 but the sizes don't match, 3 != 2"


def test_where_single_argument_is_nonzero():
    e = ember.where(ember.tensor([[True, False], [False, True]]))
    t = torch.where(torch.tensor([[True, False], [False, True]]))
    assert [x.numpy().tolist() for x in e] == [x.numpy().tolist() for x in t]


def test_every_issue_name_exists():
    methods = ("pow mm bmm mul add sub div neg eq ne gt lt ge le sin cos square any all view_as expand repeat "
               "contiguous norm std var prod topk sort argsort cumsum").split()
    assert [m for m in methods if not hasattr(ember.Tensor, m)] == []
    functions = ("linspace logspace full eye empty randint randperm zeros_like ones_like full_like empty_like "
                 "rand_like randn_like sin cos exp log sqrt abs tanh sigmoid relu matmul mm max min argmax sum mean "
                 "flatten where clamp einsum mul add allclose isnan isfinite save load").split()
    assert [f for f in functions if not hasattr(ember, f)] == []
    assert math.isclose(ember.sum(ember.ones(3)).item(), 3.0)
