"""The playground's training session: a small MLP built from ``ember.nn`` layers, trained with
ember's losses and ``ember.optim``, and read out for the page (heatmaps, weights, the backprop
inspector).

A session is plain ember code. With the same config, this loop gives bit-identical numbers:

    ember.manual_seed(seed)
    model = nn.Sequential(nn.Linear(n_in, h1), nn.Tanh(), ..., nn.Linear(h_L, n_out))
    opt = optim.SGD(model.parameters(), lr=lr)
    gen = ember.random.default_generator()          # continues after the initialisation draws
    for epoch in range(E):
        perm = gen.permutation(n_train)
        for b in range(0, n_train, batch):
            loss = F.cross_entropy(model(ember.tensor(x[perm[b:b+batch]])), y[perm[b:b+batch]])
            opt.zero_grad(); loss.backward(); opt.step()

The backprop inspector reads δ = ∂L/∂z (z: a layer's pre-activation) from ember's autograd
through ``_Tap``, an identity op whose backward records its upstream gradient, and checks it
against deck 000's recursion δ(l) = g'(z(l)) ⊙ (δ(l+1) Θ(l)) and ∂L/∂Θ_ij = Σ_n δ_i a_j.
"""
from __future__ import annotations

import base64
import json
import math
import threading
import time

import numpy as np

from .. import nn, optim
from ..autograd import Function, no_grad
from ..nn import functional as F
from ..random import default_generator, manual_seed
from ..tensor import Tensor
from . import data as D

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": None,
               "leaky_relu": nn.LeakyReLU}
LOSSES = ("mse", "cross_entropy")
OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD", "adam": "Adam", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
REGULARIZERS = ("none", "l1", "l2")
LIMITS = {"layers": 6, "neurons": 8}          # TF Playground's, as the page shows them
LIFTED = {"layers": 16, "neurons": 64}        # with the URL flag lift=1; the server's hard cap
GRID, THUMB = 60, 24                          # heatmap and per-neuron thumbnail resolution
INSPECT_SAMPLES = 64                          # the inspector shows at most this many batch rows
MAX_WEIGHT = 100.0                            # a weight typed into the page must lie in [-100, 100]
_SEED_LOCK = threading.Lock()                 # ember.manual_seed is process-wide


class ConfigError(ValueError):
    """A playground parameter that is missing, of the wrong type or out of range (HTTP 400)."""


def optimizer_available(name: str) -> bool:
    """Whether ``ember.optim`` provides the optimizer behind a playground choice right now."""
    return OPTIMIZERS.get(name) is not None and hasattr(optim, OPTIMIZERS[name])


DEFAULTS = {
    "dataset": "circle", "arms": 3, "n": 500, "noise": 0, "ratio": 50, "batch": 10, "seed": 1,
    "features": ["x1", "x2"], "layers": [4, 2], "activations": ["tanh", "tanh"],
    "loss": "mse", "optimizer": "sgd", "lr": 0.03, "reg": "none", "reg_rate": 0.0,
    "dropout": 0.0, "lift": False, "task": "classification",
}


def _num(cfg, key, lo, hi, integer=False):
    v = cfg.get(key, DEFAULTS[key])
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or (integer and int(v) != v) or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key} must be {kind} in [{lo:g}, {hi:g}], got {v!r}"[:200])
    return int(v) if integer else float(v)


def _choice(cfg, key, options):
    v = cfg.get(key, DEFAULTS[key])
    if not isinstance(v, str) or v not in options:
        raise ConfigError(f"unknown {key} {v!r}; choose one of {', '.join(options)}"[:300])
    return v


def validate_config(cfg) -> dict:
    """Check every parameter of a playground config and fill in defaults.

    Args:
        cfg: a dict as the page sends it (keys of ``DEFAULTS``; "points" for dataset "custom").
    Returns:
        A new dict with every key present and normalised types.
    Raises:
        ConfigError: naming the first bad parameter, its allowed range and the value received.
    """
    if not isinstance(cfg, dict):
        raise ConfigError("config must be a JSON object")
    unknown = set(cfg) - set(DEFAULTS) - {"points"}
    if unknown:
        raise ConfigError(f"unknown parameter(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    out = {"dataset": _choice(cfg, "dataset", D.DATASETS)}
    out["lift"] = bool(cfg.get("lift", False))
    lim = LIFTED if out["lift"] else LIMITS
    out["arms"] = _num(cfg, "arms", 3, 5, True)
    out["n"] = _num(cfg, "n", 20, 2000, True)
    out["noise"] = _num(cfg, "noise", 0, 50)
    out["ratio"] = _num(cfg, "ratio", 10, 90)
    out["batch"] = _num(cfg, "batch", 1, 1000, True)
    out["seed"] = _num(cfg, "seed", 0, 2**31 - 1, True)
    feats = cfg.get("features", DEFAULTS["features"])
    if not isinstance(feats, list) or not feats or len(feats) > len(D.FEATURES) \
            or any(not isinstance(f, str) or f not in D.FEATURES for f in feats) or len(set(feats)) != len(feats):
        raise ConfigError(f"features must be a non-empty list of distinct names from "
                          f"{', '.join(D.FEATURES)}, got {feats!r}"[:300])
    out["features"] = [f for f in D.FEATURES if f in feats]  # canonical order
    layers = cfg.get("layers", DEFAULTS["layers"])
    if not isinstance(layers, list):
        raise ConfigError(f"layers must be a list of hidden-layer widths, got {type(layers).__name__}")
    if len(layers) > lim["layers"]:
        raise ConfigError(f"at most {lim['layers']} hidden layers allowed, got {len(layers)}"
                          + ("" if out["lift"] else " (the URL flag lift=1 raises the limit to "
                             f"{LIFTED['layers']})"))
    for i, w in enumerate(layers):
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= lim["neurons"]:
            raise ConfigError(f"layer {i + 1}: width must be an integer in [1, {lim['neurons']}], got {w!r}"[:200])
    out["layers"] = list(layers)
    acts = cfg.get("activations", DEFAULTS["activations"])
    if isinstance(acts, str):
        acts = [acts] * len(layers)
    if not isinstance(acts, list) or len(acts) != len(layers):
        raise ConfigError(f"activations must list one activation per hidden layer ({len(layers)}), got {acts!r}"[:200])
    for i, a in enumerate(acts):
        if not isinstance(a, str) or a not in ACTIVATIONS:
            raise ConfigError(f"layer {i + 1}: unknown activation {a!r}; choose one of {', '.join(ACTIVATIONS)}"[:200])
    out["activations"] = list(acts)
    out["loss"] = _choice(cfg, "loss", LOSSES)
    out["optimizer"] = _choice(cfg, "optimizer", tuple(OPTIMIZERS))
    if not optimizer_available(out["optimizer"]):
        raise ConfigError(f"optimizer {out['optimizer']!r} is not available in this ember "
                          f"(ember.optim has no {OPTIMIZERS[out['optimizer']]})")
    out["lr"] = _num(cfg, "lr", 1e-6, 10)
    out["reg"] = _choice(cfg, "reg", REGULARIZERS)
    out["reg_rate"] = _num(cfg, "reg_rate", 0, 10)
    out["dropout"] = _num(cfg, "dropout", 0, 0.9)
    if out["dataset"] == "custom":
        out["task"] = _choice(cfg, "task", ("classification", "regression"))
        out["points"] = cfg.get("points")
        if out["points"] is None:
            raise ConfigError("dataset custom needs points: a list of [x1, x2, label]")
    else:
        out["task"] = "regression" if out["dataset"] in D.REGRESSION else "classification"
    if out["task"] == "regression" and out["loss"] == "cross_entropy":
        raise ConfigError("loss cross_entropy needs a classification dataset; use mse for regression")
    return out


def load_data(cfg: dict):
    """The (validated) config's data: (xy (N, 2), y, train indices, test indices, classes),
    classes = 0 for regression. Raises DataError for bad custom points."""
    if cfg["dataset"] == "custom":
        xy, y = D.check_points(cfg["points"], cfg["task"] == "regression")
    else:
        xy, y = D.make_dataset(cfg["dataset"], cfg["n"], cfg["noise"] / 100, cfg["seed"], cfg["arms"])
    classes = 0 if cfg["task"] == "regression" else max(int(y.max()) + 1, 2)
    tr, te = D.split(len(xy), cfg["ratio"] / 100, cfg["seed"])
    return xy, y, tr, te, classes


def build_model(cfg: dict, classes: int) -> nn.Sequential:
    """``nn.Sequential`` of Linear layers and activation modules for a config ("linear" adds no
    module). Output width: ``classes`` logits, or 1 for regression. Draws the initial weights
    from ember's generator (call ``ember.manual_seed`` first for a reproducible net)."""
    mods, width = [], len(cfg["features"])
    for w, act in zip(cfg["layers"], cfg["activations"]):
        mods.append(nn.Linear(width, w))
        if ACTIVATIONS[act] is not None:
            mods.append(ACTIVATIONS[act]())
        width = w
    mods.append(nn.Linear(width, classes or 1))
    return nn.Sequential(*mods)


def make_optimizer(cfg: dict, params):
    """The ``ember.optim`` optimizer a config names ("momentum" is SGD with momentum 0.9)."""
    cls = getattr(optim, OPTIMIZERS[cfg["optimizer"]])
    if cfg["optimizer"] == "momentum":
        return cls(params, lr=cfg["lr"], momentum=0.9)
    return cls(params, lr=cfg["lr"])


class _Tap(Function):
    """Identity op that records the gradient flowing through it (a backward hook).

    forward: y = x.  backward: grad_x = grad_out, and sink[index] = grad_out (the δ of deck 000).
    """

    @staticmethod
    def forward(ctx, x, sink=None, index=0):
        ctx.sink, ctx.index = sink, index
        return x

    @staticmethod
    def backward(ctx, grad_out):
        ctx.sink[ctx.index] = np.array(grad_out, copy=True)
        return grad_out


def _gprime(act: str, z: np.ndarray) -> np.ndarray:
    """g'(z) of each activation, in float64, written out independently of ember's ops."""
    z = z.astype(np.float64)
    if act == "relu":
        return (z > 0).astype(np.float64)
    if act == "leaky_relu":
        return np.where(z > 0, 1.0, 0.01)
    if act == "tanh":
        return 1 - np.tanh(z) ** 2
    if act == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    return np.ones_like(z)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, np.uint8).tobytes()).decode()


def _grid(n: int) -> np.ndarray:
    """Cell centres of an n×n grid over the domain, row 0 at the top (x2 = +6), (n², 2)."""
    c = (np.arange(n) + 0.5) / n * 2 * D.DOMAIN - D.DOMAIN
    x1, x2 = np.meshgrid(c, c[::-1])
    return np.stack([x1.ravel(), x2.ravel()], 1).astype(np.float32)


def _r(a, nd=5):
    """Rounded nested lists for JSON, None where a value is not finite (JSON has no NaN)."""
    a = np.round(np.asarray(a, np.float64), nd)
    ok = np.isfinite(a)
    if ok.all():
        return a.tolist()
    o = a.astype(object)
    o[~ok] = None
    return o.tolist()


def _f(x):
    """A float for JSON: None when not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


class Session:
    """One browser tab's network, data, optimizer and history.

    Args: cfg (a dict, validated here). Raises ConfigError / DataError for bad parameters.
    Attributes: epoch (completed passes over the training set), steps (minibatch updates),
        history [(epoch as float, train loss, test loss)], lock (one training request at a time),
        diverged (None, or a message once the loss or the weights stopped being finite: training
        then stops until the page resets the session).
    """

    MAX_HISTORY = 2000

    def __init__(self, cfg: dict):
        self.cfg = cfg = validate_config(cfg)
        xy, y, tr, te, self.classes = load_data(cfg)
        self.xy, self.y, self.tr, self.te = xy, y, tr, te
        feats = D.features(xy, cfg["features"])
        self.x_train, self.y_train = feats[tr], y[tr]
        self.x_test, self.y_test = feats[te], y[te]
        with _SEED_LOCK:
            manual_seed(cfg["seed"])
            self.model = build_model(cfg, self.classes)
            # the session's own copy of ember's stream, right after the initialisation draws:
            # shuffling and dropout masks continue it exactly as a script's default_generator would
            self.rng = np.random.Generator(np.random.PCG64())
            self.rng.bit_generator.state = default_generator().bit_generator.state
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.opt = make_optimizer(cfg, self.model.parameters())
        self.lock = threading.Lock()
        self.epoch, self.steps, self.pos, self.perm = 0, 0, 0, None
        self.last = None           # the inspector's record of the latest minibatch update
        self.grad_norms = [0.0] * len(self.linears)
        self.last_used = time.monotonic()
        self.history = []
        self.diverged = None
        self.edited = 0            # weights set by hand from the page
        self._log()

    # ---- the network ---------------------------------------------------------------------
    def forward(self, x: Tensor, training: bool = False, sink: dict | None = None):
        """Run the MLP layer by layer (the same modules, in the same order, as ``self.model``).

        Returns: (output, activations [a(0)=x, a(1), ...], pre-activations [z(1), ...],
        dropout scales [one per hidden layer or None]) — all Tensors except the scales.
        """
        acts, zs, scales = [x], [], []
        mods, h, i = list(self.model), x, 0
        p = self.cfg["dropout"]
        for li, lin in enumerate(self.linears):
            z = mods[i](h)
            i += 1
            if sink is not None:
                z = _Tap.apply(z, sink=sink, index=li)
            zs.append(z)
            if lin is self.linears[-1]:
                return z, acts, zs, scales
            a = z
            if i < len(mods) and not isinstance(mods[i], nn.Linear):
                a = mods[i](z)
                i += 1
            scale = None
            if training and p > 0:  # inverted dropout, masks from the session's ember stream
                scale = (self.rng.random(a.shape, dtype=np.float32) >= p).astype(np.float32) / np.float32(1 - p)
                a = a * Tensor(scale)
            scales.append(scale)
            acts.append(a)
            h = a

    def data_loss(self, out: Tensor, y: np.ndarray) -> Tensor:
        """The chosen ember loss (mean over the batch): cross-entropy of logits, or MSE against
        one-hot targets (classification) / the target values (regression)."""
        if self.cfg["loss"] == "cross_entropy":
            return F.cross_entropy(out, y)
        if self.classes:
            return F.mse_loss(out, Tensor(np.eye(self.classes, dtype=np.float32)[y]))
        return F.mse_loss(out, Tensor(y.reshape(-1, 1)))

    def penalty(self):
        """L1: rate·Σ|W|, L2: rate/2·Σ W² (gradient rate·W, deck 000's λΘ), weights only, no biases."""
        rate, kind = self.cfg["reg_rate"], self.cfg["reg"]
        if kind == "none" or rate == 0:
            return None
        terms = [(lin.weight.abs().sum() if kind == "l1" else (lin.weight * lin.weight).sum())
                 for lin in self.linears]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total * (rate if kind == "l1" else rate / 2)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        """The data loss (no penalty, no dropout) of the current network on (x, y), as a float."""
        with no_grad():
            return float(self.data_loss(self.forward(Tensor(x))[0], y).item())

    # ---- training ------------------------------------------------------------------------
    @property
    def batches_per_epoch(self) -> int:
        """Minibatches per epoch: ⌈n_train / batch⌉ (the last one may be smaller)."""
        return -(-len(self.x_train) // self.cfg["batch"])

    def train_batch(self) -> None:
        """One minibatch update; a new epoch's permutation is drawn when the last one is used up."""
        n, bs = len(self.x_train), self.cfg["batch"]
        if self.perm is None:
            self.perm, self.pos = self.rng.permutation(n), 0
        idx = self.perm[self.pos:self.pos + bs]
        sink = {}
        out, acts, zs, scales = self.forward(Tensor(self.x_train[idx]), training=True, sink=sink)
        dloss = self.data_loss(out, self.y_train[idx])
        pen = self.penalty()
        loss = dloss if pen is None else dloss + pen
        weights = [lin.weight._data.copy() for lin in self.linears]
        if not math.isfinite(float(loss.item())):
            self._diverge(f"the minibatch loss became {float(loss.item())} at update {self.steps + 1}")
            return
        self.opt.zero_grad()
        loss.backward()
        self.grad_norms = [float(np.linalg.norm(lin.weight.grad._data)) for lin in self.linears]
        k = INSPECT_SAMPLES
        self.last = {"idx": idx[:k], "a": [a._data[:k].copy() for a in acts],
                     "z": [z._data[:k].copy() for z in zs], "z_full": [z._data.copy() for z in zs],
                     "delta": [sink[i][:k] for i in range(len(zs))],
                     "delta_full": [sink[i] for i in range(len(zs))], "acts_full": [a._data.copy() for a in acts],
                     "scales": [None if s is None else s[:k] for s in scales], "scales_full": scales,
                     "weights": weights, "grads": [lin.weight.grad._data.copy() for lin in self.linears],
                     "bias_grads": [lin.bias.grad._data.copy() for lin in self.linears],
                     "loss": float(dloss.item()), "batch": len(idx), "epoch": self.epoch, "step": self.steps}
        self.opt.step()
        if not all(np.isfinite(p._data).all() for p in self.model.parameters()):
            self._diverge(f"the weights stopped being finite at update {self.steps + 1}")
        self.steps += 1
        self.pos += bs
        if self.pos >= n:
            self.perm, self.epoch = None, self.epoch + 1
        self.last["epoch_after"] = self.epoch  # the header's epoch counter right after this update

    def train(self, unit: str, count: int, max_steps: int = 5000, max_seconds: float = 2.0) -> int:
        """Run ``count`` epochs (to the next epoch boundary each) or minibatches, within the
        request's budget of ``max_steps`` updates and ``max_seconds``; log the losses once.
        Returns: the number of minibatch updates done."""
        t0, done = time.monotonic(), 0
        if self.diverged:
            return 0
        with np.errstate(all="ignore"):  # overflow on the way to divergence is reported, not printed
            for _ in range(count):
                if unit == "epoch":
                    target = self.epoch + 1
                    while self.epoch < target and done < max_steps and not self.diverged:
                        self.train_batch()
                        done += 1
                else:
                    self.train_batch()
                    done += 1
                if done >= max_steps or time.monotonic() - t0 > max_seconds or self.diverged:
                    break
            self._log()
        return done

    def _diverge(self, why: str):
        self.diverged = (f"training diverged: {why} (epoch {self.epoch}). Lower the learning rate "
                         "(or the regularisation rate) and press reset.")

    def set_weight(self, layer, row, col, value) -> None:
        """Set weight [row, col] of Linear layer ``layer`` (0 = the first) to ``value``, as a click on
        a link of the page's diagram does; the losses are re-evaluated and logged.
        Raises ConfigError for an index out of range or a value outside ±MAX_WEIGHT."""
        def index(name, v, n):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
                raise ConfigError(f"{name} must be an integer in [0, {n - 1}], got {str(v)[:40]}")
        index("layer", layer, len(self.linears))
        w = self.linears[layer].weight._data
        index("row", row, w.shape[0])
        index("col", col, w.shape[1])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or abs(value) > MAX_WEIGHT:
            raise ConfigError(f"value must be a number in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}], got {str(value)[:40]}")
        with no_grad():   # an in-place write of a parameter: bumps its version, as PyTorch's
            self.linears[layer].weight[row, col] = value
        self.edited += 1
        self.diverged = None if all(np.isfinite(p._data).all() for p in self.model.parameters()) else self.diverged
        with np.errstate(all="ignore"):
            self._log()

    def _log(self):
        e = self.epoch + (self.pos / len(self.x_train) if self.perm is not None else 0)
        self.loss_train = self.evaluate(self.x_train, self.y_train)
        self.loss_test = self.evaluate(self.x_test, self.y_test)
        if not self.diverged and not (math.isfinite(self.loss_train) and math.isfinite(self.loss_test)):
            self._diverge(f"the loss became {self.loss_train} (training) / {self.loss_test} (test)")
        self.history.append((round(e, 4), _f(self.loss_train), _f(self.loss_test)))
        if len(self.history) > self.MAX_HISTORY:  # keep the start, thin the middle
            self.history = self.history[:1] + self.history[2::2]

    # ---- views ---------------------------------------------------------------------------
    def _maps(self, n: int):
        grid = _grid(n)
        with no_grad(), np.errstate(all="ignore"):
            out, acts, _, _ = self.forward(Tensor(D.features(grid, self.cfg["features"])))
        # a diverged network draws as 0 where its values are not finite
        return np.nan_to_num(out._data, nan=0.0, posinf=0.0, neginf=0.0), \
            [np.nan_to_num(a._data, nan=0.0, posinf=0.0, neginf=0.0) for a in acts]

    def heatmap(self) -> dict:
        """The output over a GRID×GRID grid: classification -> predicted class and confidence
        (0..255; softmax for cross-entropy, clipped outputs for MSE), regression -> output
        mapped from [−1, 1] to 0..255."""
        out, _ = self._maps(GRID)
        if not self.classes:
            v = np.clip(out[:, 0], -1, 1)
            return {"size": GRID, "kind": "regression", "value": _b64(np.round((v + 1) * 127.5))}
        if self.cfg["loss"] == "cross_entropy":
            out = out.astype(np.float64)
            e = np.exp(out - out.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
        else:
            p = np.clip(out, 0, 1) + 1e-6
            p = p / p.sum(1, keepdims=True)
        k = p.argmax(1)
        conf = (p.max(1) - 1 / self.classes) / (1 - 1 / self.classes)
        return {"size": GRID, "kind": "classification", "cls": _b64(k),
                "conf": _b64(np.round(np.clip(conf, 0, 1) * 255))}

    def thumbnails(self) -> list:
        """Per layer (inputs first, output logits last), per neuron: its activation over a THUMB×THUMB grid,
        scaled by its largest magnitude to 0..255 (127.5 = 0), with that scale."""
        out, acts = self._maps(THUMB)
        layers = []
        for a in acts + [out]:
            a = a.astype(np.float64)
            m = np.abs(a).max(0)
            s = np.where(m > 0, m, 1)
            q = np.round((a / s + 1) * 127.5)
            layers.append([{"scale": float(m[j]), "map": _b64(q[:, j])} for j in range(a.shape[1])])
        return layers

    def state(self, full: bool = False) -> dict:
        """The JSON the page draws after each request (``full`` adds the data points)."""
        s = {"epoch": self.epoch, "steps": self.steps, "batches_per_epoch": self.batches_per_epoch,
             "loss": {"train": _f(self.loss_train), "test": _f(self.loss_test)},
             "history": self.history, "heatmap": self.heatmap(), "neurons": self.thumbnails(),
             "weights": [_r(lin.weight._data) for lin in self.linears],
             "biases": [_r(lin.bias._data) for lin in self.linears],
             "grad_norms": [_f(g) for g in self.grad_norms], "classes": self.classes,
             "outputs": self.output_label(), "diverged": self.diverged, "edited": self.edited,
             "task": "regression" if not self.classes else "classification", "config": self.public_config()}
        if full:
            s["train_points"] = self._points(self.tr)
            s["test_points"] = self._points(self.te)
        return s

    def _points(self, idx) -> list:
        lab = self.y[idx]
        return [[round(float(a), 3), round(float(b), 3), (int(c) if self.classes else round(float(c), 4))]
                for (a, b), c in zip(self.xy[idx], lab)]

    def output_label(self) -> str:
        """What the output layer's units are, as the diagram labels them."""
        if not self.classes:
            return "1 value"
        if self.cfg["loss"] == "cross_entropy":
            return f"{self.classes} logits"
        return f"{self.classes} outputs (MSE vs one-hot)"

    def public_config(self) -> dict:
        """The validated config without the custom points (what the URL and exports carry)."""
        return {k: v for k, v in self.cfg.items() if k != "points"}

    def inspect(self) -> dict:
        """The backprop inspector's view of the latest minibatch update (ValueError if none yet).

        Returns the epoch counter right after that update (as the page's header shows it), and per layer l: a (inputs and hidden activations, first INSPECT_SAMPLES rows), δ =
        ∂L/∂z read from ember's autograd, δ from deck 000's recursion δ(l) = g'(z(l)) ⊙
        ((δ(l+1) Θ(l+1)) ⊙ dropout scale) with the pre-update weights, per link ∂L/∂Θ_ij from
        .grad (what the optimizer used), and the largest differences between autograd and the
        hand formulas (δ recursion; Σ_n δ_i a_j plus the penalty's gradient vs .grad).
        """
        L = self.last
        if L is None:
            raise ValueError("no training step yet: press step or play first")
        acts = self.cfg["activations"]
        rec_err, grad_err = 0.0, 0.0
        for l in range(len(L["delta_full"]) - 2, -1, -1):  # hidden layers, output side first
            upstream = L["delta_full"][l + 1].astype(np.float64) @ L["weights"][l + 1].astype(np.float64)
            if L["scales_full"][l] is not None:
                upstream = upstream * L["scales_full"][l]
            rec = _gprime(acts[l], L["z_full"][l]) * upstream
            rec_err = max(rec_err, float(np.abs(rec - L["delta_full"][l]).max()))
        for l, W in enumerate(L["weights"]):
            g = L["delta_full"][l].astype(np.float64).T @ L["acts_full"][l].astype(np.float64)
            if self.cfg["reg"] == "l2":
                g = g + self.cfg["reg_rate"] * W
            elif self.cfg["reg"] == "l1":
                g = g + self.cfg["reg_rate"] * np.sign(W)
            scale = max(1.0, float(np.abs(L["grads"][l]).max()))
            grad_err = max(grad_err, float(np.abs(g - L["grads"][l]).max()) / scale)
        return {"epoch": L["epoch_after"], "step": L["step"], "batch": L["batch"], "loss": _f(L["loss"]),
                "samples": len(L["idx"]), "points": [[round(float(v), 3) for v in self.xy[self.tr[i]]]
                                                      for i in L["idx"]],
                "labels": [(int(v) if self.classes else float(v)) for v in self.y_train[L["idx"]]],
                "a": [_r(a, 6) for a in L["a"]], "z": [_r(z, 6) for z in L["z"]],
                "delta": [_r(d, 8) for d in L["delta"]],
                "weights": [_r(w, 6) for w in L["weights"]], "grads": [_r(g, 8) for g in L["grads"]],
                "bias_grads": [_r(g, 8) for g in L["bias_grads"]],
                "recursion_max_err": _f(rec_err), "grad_max_rel_err": _f(grad_err),
                "activations": acts, "features": self.cfg["features"]}
