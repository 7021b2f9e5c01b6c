"""The errors ``ember.onnx`` raises; both are ``ValueError``s, so the ``ember`` command prints
them as one line."""


class OnnxExportError(ValueError):
    """A model that cannot be written as ONNX (a layer or op with no ONNX form), naming it."""


class OnnxImportError(ValueError):
    """An ONNX file ember cannot build a model from: not ONNX, truncated, or with ops ember lacks
    (all of them listed at once)."""
