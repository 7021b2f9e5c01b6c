#!/usr/bin/env python
"""Walk a list of public PyTorch names and record which ember has; write docs/pytorch-compat.md.

Usage:  python scripts/pytorch_compat.py          # rewrite docs/pytorch-compat.md
        python scripts/pytorch_compat.py --check  # exit 1 if the file is out of date

tests/test_pytorch_names.py fails when the document differs from what this script generates, so
the page always says what the code has. A name is *present* when ember's matching object has an
attribute of that name, or is a package with a submodule of that name (for ``Tensor`` dunders:
defined by ember, not inherited from ``object``). The list only names things PyTorch 2.13 has
(the test checks that too).
"""
from __future__ import annotations

import importlib.util
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "pytorch-compat.md"

# (section title, PyTorch object, ember object, names)
SECTIONS = [
    ("torch", "torch", "ember", """
        tensor as_tensor from_numpy zeros ones empty full zeros_like ones_like empty_like full_like
        rand randn randint randperm rand_like randn_like randint_like arange linspace logspace eye
        manual_seed seed initial_seed get_rng_state set_rng_state no_grad enable_grad
        set_grad_enabled is_grad_enabled inference_mode is_tensor numel cat concat stack hstack
        vstack split chunk reshape flatten squeeze unsqueeze transpose permute t gather scatter
        index_select masked_select where clamp clip abs neg exp log log1p expm1 sqrt rsqrt sin cos
        tan tanh sigmoid relu pow add sub mul div matmul mm bmm einsum sum mean std var prod max min
        argmax argmin amax amin maximum minimum cumsum cumprod sort argsort topk eq ne gt lt ge le
        allclose isclose equal isnan isinf isfinite any all round floor ceil sign norm dot outer
        softmax log_softmax save load device dtype float32 float64 float16 bfloat16 int64 int32
        int16 int8 uint8 bool float double long int half get_default_dtype set_default_dtype
        result_type promote_types Tensor Size Generator set_num_threads get_num_threads cuda
        autograd nn optim utils broadcast_tensors tril triu diag trace flip roll repeat_interleave
        meshgrid logsumexp erf lerp bincount unique nonzero"""),
    ("Tensor", "torch.Tensor", "ember.Tensor", """
        shape dtype device grad requires_grad is_leaf grad_fn data ndim T size dim numel item
        tolist numpy detach clone requires_grad_ backward to cpu cuda float double long int bool
        half type view view_as reshape reshape_as flatten squeeze unsqueeze permute transpose t
        contiguous expand expand_as repeat chunk split sum mean std var prod max min argmax argmin
        cumsum sort argsort topk abs exp log sqrt pow sin cos tanh sigmoid relu softmax log_softmax
        clamp clip matmul mm bmm add sub mul div neg eq ne gt lt ge le any all norm zero_ fill_
        add_ sub_ mul_ div_ copy_ clamp_ normal_ uniform_ masked_fill masked_fill_ index_select
        gather scatter_ new_zeros new_ones new_tensor new_full retain_grad register_hook retains_grad
        is_contiguous
        __getitem__ __setitem__ __index__ __format__ __len__ __iter__ __iadd__ __isub__ __imul__
        __itruediv__ __array__ __bool__ __float__ __int__ __matmul__ __pow__ __neg__ __abs__"""),
    ("torch.nn", "torch.nn", "ember.nn", """
        Module Parameter Sequential ModuleList ModuleDict ParameterList ParameterDict Identity
        Linear Bilinear Conv1d Conv2d Conv3d ConvTranspose2d MaxPool1d MaxPool2d MaxUnpool2d
        AvgPool1d AvgPool2d
        AdaptiveAvgPool2d AdaptiveMaxPool2d BatchNorm1d BatchNorm2d LayerNorm GroupNorm Dropout
        Dropout2d Embedding Flatten Unflatten ReLU LeakyReLU ELU GELU SiLU Mish Softplus Sigmoid Tanh
        Softmax LogSoftmax Hardtanh ReLU6 PReLU MSELoss L1Loss CrossEntropyLoss NLLLoss BCELoss
        BCEWithLogitsLoss HuberLoss SmoothL1Loss KLDivLoss MultiMarginLoss RNN LSTM GRU
        MultiheadAttention Upsample ZeroPad2d init functional utils"""),
    ("torch.nn.Module", "torch.nn.Module", "ember.nn.Module", """
        forward parameters named_parameters children named_children modules named_modules train
        eval zero_grad state_dict load_state_dict to cpu apply add_module register_buffer
        register_parameter buffers named_buffers requires_grad_ extra_repr register_forward_hook
        register_forward_pre_hook half double float type get_submodule
        get_parameter get_buffer register_full_backward_hook register_full_backward_pre_hook"""),
    ("torch.nn.functional", "torch.nn.functional", "ember.nn.functional", """
        relu leaky_relu gelu silu elu softplus sigmoid tanh softmax log_softmax linear conv1d conv2d
        conv_transpose2d max_pool1d max_pool1d_with_indices max_pool2d max_pool2d_with_indices
        max_unpool2d avg_pool1d avg_pool2d adaptive_avg_pool2d adaptive_max_pool2d
        adaptive_max_pool2d_with_indices dropout batch_norm layer_norm
        cross_entropy nll_loss mse_loss l1_loss binary_cross_entropy
        binary_cross_entropy_with_logits huber_loss smooth_l1_loss kl_div one_hot pad interpolate
        normalize embedding cosine_similarity unfold fold hardtanh relu6 logsigmoid softmin glu"""),
    ("torch.nn.init", "torch.nn.init", "ember.nn.init", """
        uniform_ normal_ constant_ zeros_ ones_ eye_ dirac_ xavier_uniform_ xavier_normal_
        kaiming_uniform_ kaiming_normal_ trunc_normal_ orthogonal_ sparse_ calculate_gain"""),
    ("torch.nn.utils", "torch.nn.utils", "ember.nn.utils", """
        clip_grad_norm_ clip_grad_value_ parameters_to_vector vector_to_parameters"""),
    ("torch.optim", "torch.optim", "ember.optim", """
        Optimizer SGD Adam AdamW Adagrad Adadelta Adamax NAdam RAdam RMSprop Rprop ASGD LBFGS
        SparseAdam lr_scheduler"""),
    ("torch.optim.Optimizer", "torch.optim.Optimizer", "ember.optim.Optimizer", """
        step zero_grad state_dict load_state_dict add_param_group"""),
    ("torch.optim.lr_scheduler", "torch.optim.lr_scheduler", "ember.optim.lr_scheduler", """
        LRScheduler LambdaLR MultiplicativeLR StepLR MultiStepLR ConstantLR LinearLR ExponentialLR
        CosineAnnealingLR CosineAnnealingWarmRestarts ReduceLROnPlateau OneCycleLR CyclicLR
        PolynomialLR SequentialLR ChainedScheduler"""),
    ("torch.utils.data", "torch.utils.data", "ember.utils.data", """
        Dataset IterableDataset TensorDataset ConcatDataset StackDataset ChainDataset Subset
        DataLoader random_split default_collate default_convert get_worker_info Sampler
        SequentialSampler RandomSampler SubsetRandomSampler WeightedRandomSampler BatchSampler
        DistributedSampler"""),
    ("torch.autograd", "torch.autograd", "ember.autograd", """
        Function grad backward no_grad enable_grad set_grad_enabled inference_mode gradcheck
        detect_anomaly set_detect_anomaly"""),
]

# What differs from PyTorch on purpose (kept by hand; rendered into the page).
DIFFERENCES = [
    "**Random streams.** ember draws from one NumPy `Generator` (PCG64) reseeded by "
    "`ember.manual_seed`; PyTorch uses its own Mersenne-Twister/Philox streams. The same seed gives "
    "different numbers (same distributions): initial weights, `randn`, dropout masks, shuffling and "
    "`nn.init` fills differ. Programs that must match PyTorch make their data with NumPy's seeded "
    "RNG and `torch.tensor(...)` (see `tests/clients/`). `generator=` arguments take "
    "`ember.Generator()` (torch.Generator's methods; it is a PCG64 `numpy.random.Generator`) or any "
    "`numpy.random.Generator`.",
    "**Devices.** ember runs on the CPU only; `pin_memory` is accepted and does nothing.",
    "**DataLoader batch dtypes.** The default collate turns NumPy bool/integer fields into int64 "
    "and float fields other than float64 into float32 (ember's batch dtypes); PyTorch keeps the "
    "NumPy dtype. Stacked batches never require grad. A dataset may define `__getitems__(indices)` "
    "returning the whole batch already collated as NumPy arrays (ember's fast path, used by "
    "`ember train`); PyTorch's `__getitems__` returns a list of samples.",
    "**DataLoader workers.** Worker processes start with `fork` where available. Worker `w` is "
    "seeded from a hash of the loader's generator state, the epoch and `w`, without drawing from "
    "that generator, so the main random stream (and the shuffling of later epochs) is the same "
    "with and without workers; PyTorch draws a base seed from its generator every epoch.",
    "**Datasets.** `MNIST`/`FashionMNIST` items are float32 tensors (1, 28, 28) in [0, 1] "
    "(torchvision's `ToTensor()` output) rather than PIL images; transforms work on NumPy arrays.",
    "**NAdam.** `mu_product` is kept as a float32 scalar, as PyTorch does at its default dtype, "
    "so trajectories agree to rounding; optimizer `step` counts are ints, not tensors.",
    "**`ember.save` / `ember.load`.** One safetensors file, never pickle: tensors and NumPy arrays "
    "are safetensors entries, the rest of the object (dicts, lists, tuples, numbers, strings, None) "
    "JSON in the header. Files are not interchangeable with `torch.save`'s; saving a whole `Module` "
    "raises TypeError pointing to `state_dict()`; `weights_only` changes nothing.",
    "**`inplace=True`** (`nn.ReLU`, `LeakyReLU`, `ELU`, `Hardtanh`, `ReLU6`, `SiLU`, `Mish`, `Dropout` and their "
    "functionals) writes the result into the input and returns it, with PyTorch's in-place rules (version counter, "
    "views, a leaf that requires grad refused). It saves no memory: under autograd ember computes on a copy of the old "
    "values (`Tensor._inplace`), and a conv → ReLU → max-pool of an `nn.Sequential` runs fused whatever `inplace` says.",
    "**`compile`, `autocast`, `backends`.** `ember.compile(model)` returns the model as it is (no compiler); "
    "`autocast` runs every op in its tensors' own dtype (no mixed precision; it warns once when enabled), "
    "while `amp.GradScaler` is torch's loss scaling exactly; `backends.cudnn`'s flags are accepted and change "
    "nothing. Shapes are plain tuples (equal to `ember.Size`, but `isinstance(x.shape, ember.Size)` is False).",
    "**`RNN`, `LSTM`, `GRU` and their cells.** PyTorch's parameters, names, gate order, shapes, errors and "
    "results (float64 to 1e-10 in `tests/test_rnn.py`), unrolled over the time steps with ember's ops, so "
    "backpropagation through time is the engine's walk (slower than cuDNN's fused kernels on long sequences). "
    "`PackedSequence` inputs (`nn.utils.rnn`) work as in PyTorch; `flatten_parameters()` is a no-op.",
    "**`MultiheadAttention`, `Transformer*`.** PyTorch's parameters, masks (a bool mask of the module is True "
    "where attention is not allowed; of `scaled_dot_product_attention`, where it is), results and repr (float64 "
    "to 1e-10 in `tests/test_transformer.py`), composed of ember's ops. No fused fast path and no nested tensors: "
    "`enable_nested_tensor` is accepted and changes nothing, and no warning about it is printed.",
    "**`hardsigmoid`'s gradient.** PyTorch multiplies by 1/6 rounded to float32 even in float64 (a relative "
    "error of 3e-8); ember's is the exact 1/6. The other activations of `ember/nn/activation.py` agree to 1e-9; "
    "at a kink (x = ±3, ±λ, the threshold) each takes the one-sided value its formula gives.",
    "**`tensor(data)` dtypes.** As PyTorch: Python floats give the default float, ints int64, NumPy "
    "scalars in a list keep their dtype (`tensor([np.float64(0.5), 1.0])` is float64).",
    "**`print(tensor)`.** PyTorch's layout (4 decimals, int mode, scientific notation, 80 columns, "
    "summaries past 1000 entries), but the dtype suffix reads `dtype=ember.float64`.",
    "**`ember.distributions`.** Normal, Categorical, Bernoulli, Uniform and `kl_divergence` for Normal and "
    "Categorical pairs; samples come from ember's generator (other numbers than PyTorch's for a seed); no "
    "constraints, transforms or `validate_args` checks.",
    "**`LBFGS`.** PyTorch's algorithm without a line search (its default), step for step; "
    "`line_search_fn='strong_wolfe'` raises NotImplementedError. `ASGD` keeps eta and mu in the default float "
    "dtype as PyTorch does (so float64 runs agree to 1e-10).",
    "**`empty`, `empty_like`.** Filled with zeros (PyTorch leaves the memory uninitialised).",
    "**`div(..., rounding_mode=)`.** The rounded quotient is outside the graph (PyTorch's gradient "
    "there is zero everywhere).",
    "**`norm(p=inf, dim=...)`.** With `dim`, ties send the gradient to the first maximum (PyTorch "
    "shares it); without `dim` it is shared, as PyTorch.",
    "**An optimizer's `state_dict()`.** Its per-parameter state (`momentum_buffer`, `exp_avg`, ...) "
    "holds NumPy arrays (copies) and its `step` counts are ints, where PyTorch's holds tensors. A "
    "module's `state_dict()` is PyTorch's: detached Tensors sharing memory with the parameters and "
    "buffers, and `load_state_dict` copies in place (it takes Tensors, torch tensors or arrays).",
    "**`grad_fn`.** A node with PyTorch's name (`MulBackward0`, `AddmmBackward0`, ...), "
    "`next_functions`, `metadata`, `register_hook`/`register_prehook`, one object per node. Where "
    "ember computes an operation as one op that PyTorch composes of several (or the reverse), the "
    "graph has ember's shape: `F.linear` is one `AddmmBackward0` node whose inputs are `(x, weight, "
    "bias)` (PyTorch: `(bias, x, TBackward0(weight))`); `cross_entropy` is one `NllLossBackward0` "
    "with no `LogSoftmaxBackward0` before it; `2 - x` is `SubBackward0` with `(None, 0)` for the 2 "
    "(PyTorch: `RsubBackward1`); `x.min()`, `var`, `std`, `norm`, `prod`, `repeat`, `sort` and the "
    "losses other than MSE are chains of ember's ops; `x[0, :2]` is one node (PyTorch: a select "
    "then a slice); `reshape` of a non-contiguous tensor is `ViewBackward0`. After `backward()` "
    "without `retain_graph`, `next_functions` is empty (ember frees the links to the inputs) and the "
    "outputs of a multi-output `autograd.Function` no longer share one node object. Hooks on "
    "`AccumulateGrad` nodes raise NotImplementedError (use `Tensor.register_hook` on the leaf).",
    "**`autograd.grad(create_graph=True)`** raises NotImplementedError: ember's backward functions "
    "compute on NumPy arrays and record no graph, so there is no double backward (gradients of "
    "gradients, Hessian-vector products, gradient penalties). `is_grads_batched=True` raises "
    "NotImplementedError too. `retain_graph`, `allow_unused`, `grad_outputs`, `materialize_grads` "
    "and non-leaf inputs work as in PyTorch.",
    "**Views.** Basic indexing, `view`/`reshape` (when a view is possible), `permute`, `transpose`, "
    "`t`, `T`, `unsqueeze`, `squeeze`, `flatten`, `expand`, `split`, `chunk` return views sharing "
    "storage and the version counter with their base, as PyTorch (`.data` has its own counter, "
    "`detach()` shares it). Differences: an index that is a 0-d integer *tensor* "
    "(`a[ember.tensor(0)]`) makes a copy (NumPy's advanced indexing); a view taken under `no_grad` "
    "may be modified in place with grad mode on (PyTorch raises); the node of a view whose base was "
    "modified through another view is taken anew when the view is next used in an op (as PyTorch), "
    "not when its `grad_fn` is read.",
    "**Memory order of conv outputs.** A convolution run by ember's kernels returns an (N, C, H, W) "
    "view of an array stored batch-innermost, (C, H, W, N) in memory (the layout the next conv, "
    "ReLU and pooling read for free), so `is_contiguous()` is False for it, as for a channels_last "
    "tensor in PyTorch (PyTorch's default conv output is contiguous). `view`/`reshape`/`flatten` "
    "work on it all the same (`x.view(N, -1)` is even a view: C, H, W stay together); "
    "`contiguous()` copies it into row-major order (in tiles: ~5 ms for 16 MB); `clone()` keeps its "
    "order, as PyTorch's `clone` (preserve_format) keeps a tensor's strides. `stride()` tells the "
    "order: (1, H·W·N, W·N, N) there, PyTorch's steps for every other tensor.",
    "**`nn.init.trunc_normal_` / `orthogonal_`.** Same algorithms and distributions as PyTorch, "
    "drawn from ember's stream; `trunc_normal_` raises ValueError for `std <= 0` or `a > b`.",
    "**Pooling.** `max_pool1d/2d`, `avg_pool1d/2d`, `max_unpool2d`, `adaptive_max/avg_pool2d` and "
    "their layers take PyTorch's full signatures (dilation, ceil_mode, return_indices, "
    "count_include_pad, divisor_override, output_size, unbatched inputs) with PyTorch's numbers, "
    "indices and gradients. Bad arguments raise PyTorch's message prefixed with the function's name "
    "(`max_pool2d: pad should be at most half of effective kernel size, ...`) as ValueError or "
    "ShapeError (a ValueError), where PyTorch raises RuntimeError; `nn.MaxPool2d`/`nn.AvgPool2d` "
    "check kernel_size, stride, padding and dilation when built (PyTorch at the first call). A max "
    "pooling window holding several NaNs takes the first (PyTorch's CPU kernel: the last).",
]


def _resolve(dotted: str):
    """The object ``a.b.c`` names (module or attribute), or None if it does not exist."""
    try:
        return pkgutil.resolve_name(dotted)
    except (ImportError, AttributeError, ValueError):
        return None


def _has(obj, name: str) -> bool:
    """``obj`` has ``name``: an attribute, or for a package an importable submodule (so the
    answer does not depend on what was imported before)."""
    if obj is None:
        return False
    if isinstance(obj, type) and name.startswith("__"):
        return any(name in vars(k) for k in obj.__mro__ if k is not object)
    if hasattr(obj, name):
        return True
    return hasattr(obj, "__path__") and importlib.util.find_spec(f"{obj.__name__}.{name}") is not None


def sections() -> list[tuple[str, str, str, list[str]]]:
    return [(title, theirs, ours, names.split()) for title, theirs, ours, names in SECTIONS]


def walk() -> list[tuple[str, str, bool]]:
    """[(section, name, present in ember)] for every listed name, in order."""
    rows = []
    for title, _, ours, names in sections():
        obj = _resolve(ours)
        rows.extend((title, name, _has(obj, name)) for name in names)
    return rows


def render() -> str:
    rows = walk()
    present = sum(p for _, _, p in rows)
    out = ["# PyTorch compatibility", "",
           "ember follows PyTorch's public API (names, argument order, defaults, semantics). This page",
           "is generated by `scripts/pytorch_compat.py` from a list of public PyTorch 2.13 names and",
           "checked by `tests/test_pytorch_names.py`: regenerate it with",
           "`python scripts/pytorch_compat.py` after adding API.", "",
           f"**{present} of {len(rows)} names present.**", "",
           "| namespace | ember | present | of |", "| --- | --- | --- | --- |"]
    for title, _, ours, names in sections():
        got = sum(p for t, _, p in rows if t == title)
        out.append(f"| `{title}` | `{ours}` | {got} | {len(names)} |")
    out += ["", "## What differs on purpose", ""] + [f"- {d}" for d in DIFFERENCES]
    for title, _, ours, names in sections():
        here = [(n, p) for t, n, p in rows if t == title]
        out += ["", f"## `{title}` (ember: `{ours}`)", "",
                "present: " + (", ".join(f"`{n}`" for n, p in here if p) or "none"), "",
                "absent: " + (", ".join(f"`{n}`" for n, p in here if not p) or "none")]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    text = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/pytorch_compat.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
