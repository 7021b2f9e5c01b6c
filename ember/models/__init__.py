"""``ember.models``: ready-made architectures and the registry ``ember train --model`` uses."""
from .lenet import lenet5
from .more import convnet_bn, lenet5_classic, mlp

MODELS = {"lenet5": lenet5, "lenet5-classic": lenet5_classic, "mlp": mlp, "convnet-bn": convnet_bn}


def get_model(name: str, **kwargs):
    """Build a registered model by name. Raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
