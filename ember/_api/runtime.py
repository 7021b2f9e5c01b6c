"""torch.Size and torch.compile for ember (``ember.Size``, ``ember.compile``)."""
import math


class Size(tuple):
    """torch.Size: a tuple of dims (ember's shapes are plain tuples, which compare equal to it);
    ``numel()`` is their product."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self):
        return f"ember.Size({list(self)})"


def compile(model=None, **options):  # noqa: A001  (torch's name)
    """torch.compile: ember has no compiler, so the model (or function) comes back as it is, and
    runs as before (``options`` such as mode= or fullgraph= are accepted and change nothing).
    As a decorator with options only (``@compile(mode=...)``), returns the identity decorator."""
    return (lambda m: m) if model is None else model


def get_rng_state():
    """torch.get_rng_state: ember's generator state as a uint8 Tensor (its JSON bytes), for
    ``ember.set_rng_state``; checkpoints keep the dict form (``ember.random.get_rng_state``)."""
    import json

    import numpy as np

    from .. import random as _random
    from ..tensor import Tensor
    return Tensor(np.frombuffer(json.dumps(_random.get_rng_state()).encode(), np.uint8).copy())
