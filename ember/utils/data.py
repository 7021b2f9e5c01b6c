"""``ember.utils.data``: PyTorch's ``torch.utils.data`` path for ``ember.data`` (the same objects),
so ``from torch.utils.data import DataLoader, TensorDataset`` reads the same in ember."""
from ember.data import *  # noqa: F401,F403
from ember.data import __all__  # noqa: F401
