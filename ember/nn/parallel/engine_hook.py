"""Post-backward callbacks: what lets DistributedDataParallel reduce gradients after backward().

PyTorch's DDP queues a callback on the autograd engine (``Variable._execution_engine.
queue_callback``) that runs once the whole backward pass has finished, when every parameter's
``.grad`` is final. ember's engine (``ember.autograd.backward``) keeps the queue,
``ember.autograd._post_backward_callbacks``, and runs it as its last step (also after the early
return for a leaf root); it discards the queue when the walk raises. This module is the nn-side
interface to that list, so that autograd never imports nn:

    queue_callback(fn)              called during backward (by an op's backward), at most once per fn
    run_post_backward_callbacks()   what the engine does at its end (for a caller driving it by hand)
"""
from __future__ import annotations

from ... import autograd

_callbacks: list = autograd._post_backward_callbacks   # the engine's list itself, not a copy


def queue_callback(fn) -> None:
    """Run ``fn()`` once when the current backward pass ends (queued twice, it runs once)."""
    if not any(fn == c for c in _callbacks):
        _callbacks.append(fn)


def run_post_backward_callbacks() -> None:
    """Run and clear the queued callbacks in the order they were queued (the engine's last step)."""
    while _callbacks:
        _callbacks.pop(0)()


def pending() -> bool:
    """True when callbacks are queued and no backward pass is running: the engine did not run them."""
    return bool(_callbacks)


def discard_callbacks() -> None:
    """Forget the queued callbacks (a backward pass that raised must not reduce half a gradient)."""
    _callbacks.clear()
