"""``ember.models``: ready-made architectures and the registry ``ember train --model`` uses."""
from .lenet import lenet5
from .more import convnet_bn, lenet5_classic, mlp
from .cifar import cifar_convnet, resnet20

MODELS = {"lenet5": lenet5, "lenet5-classic": lenet5_classic, "mlp": mlp, "convnet-bn": convnet_bn,
          "resnet20": resnet20, "cifar-convnet": cifar_convnet}

# The input each model is built for, batch first with a batch of 1 (what ``ember summary`` and
# the trainer need to know); models not listed take (1, 1, 28, 28).
INPUT_SHAPES = {"resnet20": (1, 3, 32, 32), "cifar-convnet": (1, 3, 32, 32)}


def input_shape(name: str) -> tuple:
    """The input shape (1, C, H, W) the registered model ``name`` is built for."""
    return INPUT_SHAPES.get(name, (1, 1, 28, 28))


def get_model(name: str, **kwargs):
    """Build a registered model by name. Raises ValueError listing the valid names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
