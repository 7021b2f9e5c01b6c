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
