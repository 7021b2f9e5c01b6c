"""``ember.onnx``: move models between toolkits (PyTorch's ``torch.onnx`` names).

``export(model, args, f, ...)`` traces an ember model and writes an ONNX file that ONNX Runtime
runs; ``load_model(f)`` builds ember layers (real ``Parameter``s, so ``summary`` and fine-tuning
work) from an ONNX file, for instance one written by ``torch.onnx.export``. Needs the ``onnx``
extra (``pip install 'ember[onnx]'``: onnx and onnxruntime). docs/onnx.md lists the ops.
"""
from .errors import OnnxExportError, OnnxImportError
from .export import EXPORTED_OPS, export
from .load import IMPORTED_OPS, load_model

__all__ = ["export", "load_model", "OnnxExportError", "OnnxImportError", "EXPORTED_OPS", "IMPORTED_OPS"]
