"""``ember.backends``: torch.backends for a CPU-only library. The flags training scripts set
(``torch.backends.cudnn.benchmark = True``, ``cudnn.deterministic = True``) are accepted and
change nothing (ember has no cuDNN, and its kernels are deterministic already); ``mps`` and
``cudnn`` report themselves unavailable."""
from . import cudnn, mps  # noqa: F401
