"""``ember.utils``: PyTorch's ``torch.utils`` names (``ember.utils.data``), imported with ember so
that ``torch.utils.data.DataLoader`` works after ``import torch`` alone, as in PyTorch."""
from . import data  # noqa: F401
