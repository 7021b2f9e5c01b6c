"""The backward engine: deep chains, fan-out (a tensor used twice), unbroadcasting, retain_graph
and the second-backward error, no_grad / enable_grad, detach, gradient accumulation."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.autograd import unbroadcast
from ember.tensor import Tensor

torch = pytest.importorskip("torch")


def test_a_10000_op_chain_backpropagates_without_recursion():
    x = ember.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000] * 2, rtol=1e-10)


def test_a_10000_op_mixed_chain_matches_torch():
    x0 = np.linspace(-1, 1, 5)
    x, tx = ember.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    y, ty = x, tx
    for i in range(2_500):                          # 4 ops per iteration
        y = ((y * 0.999 + 0.001).tanh() - 0.0001) / 1.0001
        ty = ((ty * 0.999 + 0.001).tanh() - 0.0001) / 1.0001
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_a_tensor_used_twice_gets_both_gradients():
    x = ember.tensor([3.0], requires_grad=True)
    (x * x).backward(np.array([1.0], np.float32))
    assert x.grad.item() == 6.0
    x.grad = None
    (x + x + x).sum().backward()
    assert x.grad.item() == 3.0


def test_an_intermediate_used_twice_diamond():
    x = ember.tensor(np.array([1.5, -2.0]), requires_grad=True)
    a = x * 2                      # used by b and c
    b = a * 3
    c = (a + b) * a                # a reaches c through three paths
    c.sum().backward()
    # c = (2x + 6x)·2x = 16x²  ->  32x
    np.testing.assert_allclose(x.grad.numpy(), 32 * x.numpy())


def test_gradients_accumulate_across_backward_calls_on_leaves():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])


def test_grad_is_not_aliased_to_an_array_another_node_reads():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    g = np.array([1.0, 1.0], np.float32)
    x.backward(g)
    x.grad.data += 1
    assert g.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("grad_shape,shape", [
    ((4, 3), (3,)), ((4, 3), (4, 1)), ((4, 3), (1, 3)), ((2, 4, 3), ()), ((2, 4, 3), (1,)),
    ((2, 4, 3), (4, 1)), ((2, 1, 3), (1, 1, 3)), ((5, 2, 4, 3), (2, 1, 3)), ((3,), (3,)), ((), ()),
])
def test_unbroadcast_sums_exactly_the_broadcast_axes(grad_shape, shape):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(grad_shape)
    out = unbroadcast(g, shape)
    assert out.shape == shape
    # reference: torch's autograd of an expand
    t = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    t.expand(grad_shape).backward(torch.from_numpy(np.array(g)))
    np.testing.assert_allclose(out, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("sa,sb", [((4, 3), (3,)), ((4, 1), (1, 3)), ((), (2, 3)), ((2, 1, 3), (4, 1)),
                                   ((1,), (3, 1, 1))])
def test_broadcast_gradients_have_the_input_shapes(sa, sb):
    rng = np.random.default_rng(1)
    a0, b0 = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = ember.tensor(a0, requires_grad=True), ember.tensor(b0, requires_grad=True)
    ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    u = rng.standard_normal(np.broadcast_shapes(sa, sb))
    (a * b - a / (b * b + 1)).backward(u)
    (ta * tb - ta / (tb * tb + 1)).backward(torch.from_numpy(u))
    assert a.grad.shape == sa and b.grad.shape == sb
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)


def test_retain_graph_allows_a_second_backward_and_accumulates():
    x = ember.tensor([2.0], requires_grad=True)
    y = (x * x).exp()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_second_backward_without_retain_graph_raises():
    x = ember.tensor([2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"Trying to backward through the graph a second time; "
                                           r"pass retain_graph=True to the first backward\(\) call"):
        y.backward()


def test_backward_errors_name_the_problem():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ember.tensor([1.0]).sum().backward()
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"grad can be implicitly created only for scalar outputs, got a tensor "
                                           r"of shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\) but the tensor has shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_no_grad_records_nothing_and_enable_grad_reenables():
    x = ember.tensor([1.0], requires_grad=True)
    with ember.no_grad():
        y = x * 2
        with ember.enable_grad():
            z = x * 3
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad and z._ctx is not None
    assert ember.is_grad_enabled()

    @ember.no_grad()
    def f(t):
        return t * 2
    assert f(x)._ctx is None


def test_detach_cuts_the_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).detach() * x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x.numpy() ** 2)


def test_only_inputs_that_need_grad_get_one():
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    b = ember.tensor([3.0, 4.0])
    (a * b).sum().backward()
    assert b.grad is None
    np.testing.assert_array_equal(a.grad.numpy(), b.numpy())


def test_float32_gradients_stay_float32():
    x = ember.randn(3, 4, requires_grad=True)
    w = ember.randn(4, 2, requires_grad=True)
    ((x @ w).relu().sum() * 0.5).backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_backward_from_a_leaf():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    x.backward(np.array([3.0, 4.0], np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])
