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


def model_for(name: str, shape: tuple, num_classes: int):
    """Build registered model ``name`` for pictures of ``shape`` (C, H, W) in ``num_classes``
    classes (``ember train --dataset imagefolder``): its first layer takes C channels (``mlp``:
    C·H·W inputs), its last gives ``num_classes`` logits. H×W must be the model's own
    (``input_shape``; the trainer checks it first). Raises ValueError for an unknown name."""
    c, h, w = shape
    if name == "mlp":
        return get_model(name, num_classes=num_classes, in_features=c * h * w)
    return get_model(name, num_classes=num_classes, in_channels=c)


def model_kwargs_from_weights(name: str, weights: dict) -> dict:
    """The keyword arguments of ``get_model(name, ...)`` that rebuild the model whose state dict
    is ``weights`` (name -> array) when it was built by ``model_for``: ``num_classes`` from the
    last 2-D weight (the final Linear, out × in) and ``in_channels`` from the first 4-D weight (the
    first Conv2d, out × in × kh × kw), or ``in_features`` from the first 2-D one for ``mlp``.
    "First" and "last" follow the model's own state-dict order (a file's may be sorted by name).
    Weights that fit no such model give {} (loading them then names the mismatch)."""
    order = [weights[k] for k in get_model(name).state_dict() if k.endswith("weight") and k in weights]
    mats = [v for v in order if getattr(v, "ndim", 0) == 2]
    convs = [v for v in order if getattr(v, "ndim", 0) == 4]
    if not mats:
        return {}
    out = {"num_classes": int(mats[-1].shape[0])}
    if name == "mlp":
        out["in_features"] = int(mats[0].shape[1])
    elif convs:
        out["in_channels"] = int(convs[0].shape[1])
    return out
