"""Exports of a playground session: its weights (safetensors) and a Python script that rebuilds
the same network with ember and retrains it, reproducing the session's losses exactly."""
from __future__ import annotations

import json
import pprint

import numpy as np
from safetensors.numpy import save as _st_save

from . import engine as E


def weights_bytes(session: "E.Session") -> bytes:
    """The model's ``state_dict`` ("0.weight", "0.bias", ... as ``nn.Sequential`` names them) as a
    safetensors file in memory; the config (JSON), epoch and step count go in its metadata."""
    state = {k: np.ascontiguousarray(v) for k, v in session.model.state_dict().items()}
    meta = {"format": "ember-playground", "config": json.dumps(session.public_config()),
            "epoch": str(session.epoch), "steps": str(session.steps)}
    return _st_save(state, metadata=meta)


_TEMPLATE = '''"""Rebuild and retrain the ember playground network (exported from `ember playground`).

Run:  python {filename} [weights.safetensors]
It builds the same layers from the same seed, trains on the same data in the same order, and prints
the train/test loss after every epoch; the last line matches the playground's numbers. Given the
exported weights file, it also checks that the retrained weights equal it.
"""
import sys

import numpy as np

import ember
from ember import nn, optim
from ember.serialization import load_state_dict
from ember.nn import functional as F
from ember.playground import data as D
from ember.random import default_generator

{edited}CONFIG = {config}
STEPS = {steps}  # minibatch updates the playground made ({epoch} epochs and {extra} more)
{points}

# ---- data: the same points and the same train/test split --------------------------------------
{data_code}
train_idx, test_idx = D.split(len(xy), CONFIG["ratio"] / 100, CONFIG["seed"])
x_train, y_train = D.features(xy[train_idx], CONFIG["features"]), y[train_idx]
x_test, y_test = D.features(xy[test_idx], CONFIG["features"]), y[test_idx]
CLASSES = {classes}  # 0 = regression

# ---- the network: Linear layers and activations, initialised from the seed -------------------
ember.manual_seed(CONFIG["seed"])
model = nn.Sequential(
{layers}
)
opt = {optimizer}
gen = default_generator()  # shuffling (and dropout) continue ember's stream
linears = [m for m in model if isinstance(m, nn.Linear)]


def forward(x, training=False):
    """Layer by layer as model(x), with inverted dropout p={dropout} after each hidden activation."""
    mods, h, i = list(model), x, 0
    for lin in linears:
        z = mods[i](h)
        i += 1
        if lin is linears[-1]:
            return z
        if i < len(mods) and not isinstance(mods[i], nn.Linear):
            z = mods[i](z)
            i += 1
        if training and {dropout} > 0:
            keep = gen.random(z.shape, dtype=np.float32) >= {dropout}
            z = z * ember.tensor(keep.astype(np.float32) / np.float32(1 - {dropout}))
        h = z


def data_loss(out, target):
{loss_code}


def penalty():
{penalty_code}


def evaluate(x, target):
    with ember.no_grad():
        return data_loss(forward(ember.tensor(x)), target).item()


perm, pos, epoch = None, 0, 0
for step in range(STEPS):
    if perm is None:
        perm, pos = gen.permutation(len(x_train)), 0
    idx = perm[pos:pos + CONFIG["batch"]]
    loss = data_loss(forward(ember.tensor(x_train[idx]), training=True), y_train[idx])
    reg = penalty()
    if reg is not None:
        loss = loss + reg
    opt.zero_grad()
    loss.backward()
    opt.step()
    pos += CONFIG["batch"]
    if pos >= len(x_train):
        perm, epoch = None, epoch + 1
        print(f"epoch {{epoch}}: train loss {{evaluate(x_train, y_train)!r}}, test loss {{evaluate(x_test, y_test)!r}}")
print(f"final: train loss {{evaluate(x_train, y_train)!r}}, test loss {{evaluate(x_test, y_test)!r}}")

if len(sys.argv) > 1:
    saved = load_state_dict(sys.argv[1])
    same = all(np.array_equal(saved[k], v) for k, v in model.state_dict().items())
    print("weights identical to " + sys.argv[1] if same else "weights DIFFER from " + sys.argv[1])
'''


def script_text(session: "E.Session") -> str:
    """A standalone script (needs only ember) that rebuilds and retrains the session's network."""
    cfg = session.public_config()
    layers, width = [], len(cfg["features"])
    mod = {"relu": "nn.ReLU()", "tanh": "nn.Tanh()", "sigmoid": "nn.Sigmoid()", "leaky_relu": "nn.LeakyReLU()"}
    for w, act in zip(cfg["layers"], cfg["activations"]):
        layers.append(f"    nn.Linear({width}, {w}),")
        if act in mod:
            layers.append(f"    {mod[act]},")
        width = w
    layers.append(f"    nn.Linear({width}, {session.classes or 1}),")
    opt_cls = E.OPTIMIZERS[cfg["optimizer"]]
    extra = ", momentum=0.9" if cfg["optimizer"] == "momentum" else ""
    if cfg["dataset"] == "custom":
        pts = [[float(a), float(b), (int(c) if session.classes else float(c))]
               for (a, b), c in zip(session.xy.tolist(), session.y.tolist())]
        points = "POINTS = " + json.dumps(pts)
        ydt = "np.int64" if session.classes else "np.float32"
        data_code = ("xy = np.array([p[:2] for p in POINTS], np.float32)\n"
                     f"y = np.array([p[2] for p in POINTS], {ydt})")
    else:
        points = ""
        data_code = ('xy, y = D.make_dataset(CONFIG["dataset"], CONFIG["n"], CONFIG["noise"] / 100, '
                     'CONFIG["seed"], CONFIG["arms"])')
    if cfg["loss"] == "cross_entropy":
        loss_code = "    return F.cross_entropy(out, target)"
    elif session.classes:
        loss_code = ("    onehot = np.eye(CLASSES, dtype=np.float32)[target]  # MSE against one-hot targets\n"
                     "    return F.mse_loss(out, ember.tensor(onehot))")
    else:
        loss_code = "    return F.mse_loss(out, ember.tensor(target.reshape(-1, 1)))"
    rate = cfg["reg_rate"]
    if cfg["reg"] == "none" or rate == 0:
        penalty_code = "    return None  # no L1/L2 regularisation"
    else:
        term = "lin.weight.abs().sum()" if cfg["reg"] == "l1" else "(lin.weight * lin.weight).sum()"
        factor = repr(rate) if cfg["reg"] == "l1" else repr(rate / 2)
        penalty_code = (f"    # {cfg['reg'].upper()} on the weights only, no penalty on biases (deck 000)\n"
                        f"    terms = [{term} for lin in linears]\n"
                        "    total = terms[0]\n    for t in terms[1:]:\n        total = total + t\n"
                        f"    return total * {factor}")
    return _TEMPLATE.format(
        filename="playground_net.py",
        edited=(f"# NOTE: {session.edited} weight(s) were set by hand in the page; this script retrains from the\n"
                "# seed without those edits, so its losses and weights differ from the page's.\n"
                if session.edited else ""),
        config=pprint.pformat(cfg, sort_dicts=False, width=100),
        steps=session.steps, epoch=session.epoch,
        extra=session.steps - session.epoch * session.batches_per_epoch, points=points,
        data_code=data_code, classes=session.classes, layers="\n".join(layers),
        optimizer=f"optim.{opt_cls}(model.parameters(), lr={cfg['lr']!r}{extra})",
        dropout=repr(cfg["dropout"]), loss_code=loss_code, penalty_code=penalty_code)
