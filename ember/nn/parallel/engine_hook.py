"""Post-backward callbacks: what lets DistributedDataParallel reduce gradients after backward().

PyTorch's DDP queues a callback on the autograd engine (``Variable._execution_engine.
queue_callback``) that runs once the whole backward pass has finished, when every parameter's
``.grad`` is final. ember's engine has no hooks, so this file provides the two functions:

    queue_callback(fn)              called during backward (by an op's backward), at most once per fn
    run_post_backward_callbacks()   the ENGINE calls it as the last line of backward()

The one line the engine needs (``ember.autograd.backward``, wherever the engine lives after the
autograd package split), after the reverse walk and also after the early return for a leaf root:

    from ember.nn.parallel.engine_hook import run_post_backward_callbacks; run_post_backward_callbacks()

(better: the engine owns the two functions and this module re-exports them). Until then,
``install()`` wraps ``ember.autograd.backward`` at runtime; TEMPORARY, remove it once the engine
calls ``run_post_backward_callbacks`` itself.
"""
from __future__ import annotations

_callbacks: list = []


def queue_callback(fn) -> None:
    """Run ``fn()`` once when the current backward pass ends (queued twice, it runs once)."""
    if not any(fn == c for c in _callbacks):
        _callbacks.append(fn)


def run_post_backward_callbacks() -> None:
    """Run and clear the queued callbacks in the order they were queued (the engine's last step)."""
    while _callbacks:
        pending = list(_callbacks)
        _callbacks.clear()
        for fn in pending:
            fn()


def pending() -> bool:
    """True when callbacks are queued and no backward pass is running: the engine did not run them."""
    return bool(_callbacks)


def discard_callbacks() -> None:
    """Forget the queued callbacks (a backward pass that raised must not reduce half a gradient)."""
    _callbacks.clear()


def install() -> None:
    """TEMPORARY: make ``ember.autograd.backward`` call ``run_post_backward_callbacks`` at its end.

    Idempotent. ``Tensor.backward`` looks ``autograd.backward`` up at call time, so wrapping the
    module attribute is enough. Remove once the engine calls the function itself.
    """
    from ember import autograd
    engine = autograd.backward
    if getattr(engine, "_runs_post_backward_callbacks", False):
        return

    def backward(*args, **kwargs):
        try:
            engine(*args, **kwargs)
        except BaseException:
            discard_callbacks()
            raise
        run_post_backward_callbacks()

    backward.__doc__, backward.__name__ = engine.__doc__, engine.__name__
    backward._runs_post_backward_callbacks = True
    autograd.backward = backward
