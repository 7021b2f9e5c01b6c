"""Learning-rate schedules, each reproducing ``torch.optim.lr_scheduler``'s sequence step for step.

Protocol (as torch): building a scheduler records ``initial_lr`` in every param group and takes a
first ``step()`` (last_epoch −1 → 0); then call ``optimizer.step()`` and ``scheduler.step()`` once per
epoch (or batch, for OneCycleLR). ``get_last_lr()`` returns the lrs set by the latest step.

Chainable vs closed form: most torch schedulers are written *recursively* — the next lr is computed
from the current ``group["lr"]`` (StepLR multiplies it by γ at each boundary, CosineAnnealingLR
rescales it by a ratio of cosines, LinearLR by a ratio of factors). ember does the same, so a change
made to ``group["lr"]`` between steps (by hand, or by another scheduler) persists exactly as in torch.
``step(epoch)`` (deprecated in torch) uses the closed form ``_get_closed_form_lr`` where one exists.
LambdaLR and OneCycleLR are closed-form only: they always recompute from base/initial lrs.

Classes: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR
(warm-up), ConstantLR, PolynomialLR, CyclicLR, OneCycleLR, ReduceLROnPlateau (``step(metric)``), and the combinators SequentialLR (warm-up then
another schedule) and ChainedScheduler. ``state_dict()`` is JSON-friendly (LambdaLR stores plain
functions as None, as torch).
"""
from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter

from .optimizer import Optimizer


def cosine_factor(t: float, total: float = 1.0) -> float:
    """The cosine annealing factor (1 + cos(π t / total)) / 2: 1 at t = 0, 0 at t = total.

    The one cosine formula of ember: CosineAnnealingLR (η_min + (η_0 − η_min)·factor), OneCycleLR's
    'cos' phases (t = the fraction of the phase done, total = 1) and ``ember train``'s default
    per-step schedule (``ember.training.schedules``) all call it.
    Paper: Loshchilov & Hutter 2017, "SGDR" (https://arxiv.org/abs/1608.03983), eq. 5.
    Args: t (float, 0 ≤ t ≤ total in a decay; past total the factor rises again); total (> 0).
    Returns: a float in [0, 1].
    """
    return (1 + math.cos(math.pi * t / total)) / 2


def _per_group(name, optimizer, value):
    """A float or a list with one entry per param group -> a list (torch's _format_param)."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(value)} values, param_groups has {len(optimizer.param_groups)}.")
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: owns ``optimizer``, ``base_lrs`` (the groups' ``initial_lr``), ``last_epoch``.

    Args:
        optimizer: the ember Optimizer whose ``param_groups[i]["lr"]`` this scheduler sets.
        last_epoch: −1 to start fresh; ≥ 0 only when resuming (every group must then hold ``initial_lr``).
    Raises: TypeError if ``optimizer`` is not an Optimizer; KeyError when resuming without ``initial_lr``.
    """

    _is_initial = False

    def __init__(self, optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when "
                                   "resuming scheduler with last_epoch >= 0")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Reset the step count and take the constructor's step (``_is_initial`` set, as torch)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list:  # pragma: no cover - abstract
        """The lrs for ``self.last_epoch`` (already advanced); subclasses implement it."""
        raise NotImplementedError

    def get_last_lr(self) -> list:
        """The learning rate of each param group after the latest ``step()``."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch and write the new lr into every param group.

        Args: epoch: deprecated (as in torch): jump to this epoch using the closed form.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn("The epoch parameter in `scheduler.step()` is deprecated (as in torch); "
                          "call step() without it", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = (self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr")
                      else self.get_lr())
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Every attribute except the optimizer (torch's format): last_epoch, base_lrs, ..."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the attributes saved by ``state_dict``."""
        self.__dict__.update(state_dict)

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]


class LambdaLR(LRScheduler):
    """lr = initial_lr · lr_lambda(epoch) (closed form).

    Args:
        optimizer: wrapped optimizer.
        lr_lambda: a function epoch -> factor, or a list of them, one per param group.
        last_epoch: −1 (default) to start fresh.
    Note: ``state_dict`` stores plain functions as None (they cannot be saved), and the
        ``__dict__`` of callable objects, as torch does.
    Raises: ValueError if the list's length differs from the number of param groups.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        self.optimizer = optimizer
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * f(self.last_epoch) for f, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        sd["lr_lambdas"] = [None if isinstance(f, types.FunctionType) else dict(f.__dict__)
                            for f in self.lr_lambdas]
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        lambdas = state_dict.pop("lr_lambdas")
        self.__dict__.update(state_dict)
        for f, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                f.__dict__.update(saved)


class StepLR(LRScheduler):
    """Multiply the lr by gamma every ``step_size`` epochs (chainable).

    Schedule: lr_t = lr_{t−1}·γ if t > 0 and t % step_size == 0, else lr_{t−1}
        (closed form, from an untouched start: initial_lr · γ^⌊t / step_size⌋).
    Args: optimizer, step_size (int ≥ 1), gamma=0.1, last_epoch=−1.
    Raises: ValueError for step_size < 1.
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by gamma at each milestone epoch (chainable; a repeated milestone counts twice).

    Args: optimizer, milestones (increasing epoch indices), gamma=0.1, last_epoch=−1.
    """

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._group_lrs()]

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.milestones = Counter({int(k): v for k, v in self.milestones.items()})  # JSON made keys str

    def _get_closed_form_lr(self):
        ms = sorted(self.milestones.elements())
        return [b * self.gamma ** bisect_right(ms, self.last_epoch) for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by gamma every epoch (chainable): lr_t = lr_{t−1}·γ.

    Args: optimizer, gamma, last_epoch=−1.
    """

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from initial_lr down to eta_min over T_max epochs (SGDR without restarts).

    Closed form: η_t = η_min + (η_0 − η_min)(1 + cos(π t / T_max)) / 2.
    Like torch, ``step()`` uses the recursive form
        η_t = η_min + (η_{t−1} − η_min)(1 + cos(π t/T_max)) / (1 + cos(π (t−1)/T_max)),
    with an additive rule at t ≡ T_max + 1 (mod 2 T_max) where the ratio is 0/0; past T_max the lr
    therefore climbs back up (a cosine of period 2 T_max), and external lr changes persist.
    Paper: Loshchilov & Hutter 2017, "SGDR" (https://arxiv.org/abs/1608.03983).
    Args: optimizer, T_max (int > 0), eta_min=0.0, last_epoch=−1.
    Raises: ValueError for T_max ≤ 0.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and t > 0:
            return self._get_closed_form_lr()
        if (t - 1 - T) % (2 * T) == 0:  # (1 − cos(π/T))/2, the rise at the bottom of the cosine
            return [lr + (b - lo) * (1 - cosine_factor(1, T)) for b, lr in zip(self.base_lrs, self._group_lrs())]
        return [cosine_factor(t, T) / cosine_factor(t - 1, T) * (lr - lo) + lo for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [self.eta_min + (b - self.eta_min) * cosine_factor(self.last_epoch, self.T_max) for b in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter 2017; torch.optim.lr_scheduler.CosineAnnealingWarmRestarts): a
    cosine from initial_lr down to eta_min over T_i epochs, then a restart, each period T_mult
    times longer than the last:
        η = η_min + (η_0 − η_min)(1 + cos(π T_cur / T_i)) / 2,  T_cur the epochs since the restart.
    ``step()`` per epoch, or ``step(epoch + i / iters)`` with fractional epochs within one (torch's).
    Args: optimizer, T_0 (int > 0), T_mult=1 (int ≥ 1), eta_min=0.0, last_epoch=−1.
    Raises: ValueError for T_0 ≤ 0 or T_mult < 1 (torch's messages)."""

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1):
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        self.T_0, self.T_i, self.T_mult, self.eta_min = T_0, T_0, T_mult, eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for b in self.base_lrs]

    def step(self, epoch=None) -> None:
        """One epoch on (restarting when the period ends), or to ``epoch`` (may be fractional)."""
        self._step_count += 1
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch, self.T_cur = self.last_epoch + 1, self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur, self.T_i = self.T_cur - self.T_i, self.T_i * self.T_mult
        elif epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        elif epoch >= self.T_0 and self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        elif epoch >= self.T_0:
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** n
        else:
            self.T_i, self.T_cur = self.T_0, epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay) of a multiplicative factor from start_factor to end_factor
    over total_iters epochs, then constant (chainable).

    Closed form: lr_t = initial_lr · (s + (e − s)·min(t, total_iters)/total_iters).
    Recursive form used by ``step()`` (torch's): lr_t = lr_{t−1}·(1 + (e − s)/(total_iters·s + (t − 1)(e − s))).
    Args: optimizer, start_factor=1/3 (in (0, 1]), end_factor=1.0 (in [0, 1]), total_iters=5, last_epoch=−1.
    Raises: ValueError for factors out of range (torch's messages).
    """

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        s, e, n, t = self.start_factor, self.end_factor, self.total_iters, self.last_epoch
        if t == 0:
            return [lr * s for lr in self._group_lrs()]
        if self._is_initial or t > n:
            return self._group_lrs()
        return [lr * (1.0 + (e - s) / (n * s + (t - 1) * (e - s))) for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return [b * (s + (e - s) * min(n, self.last_epoch) / n) for b in self.base_lrs]


class MultiplicativeLR(LambdaLR):
    """Multiply the lr by lr_lambda(epoch) every epoch after the first (chainable):
    lr_t = lr_{t−1}·λ(t) for t > 0 (torch.optim.lr_scheduler.MultiplicativeLR).
    Args: optimizer, lr_lambda (a function or one per param group), last_epoch=−1."""

    def get_lr(self):
        if self.last_epoch > 0:
            return [lr * f(self.last_epoch) for f, lr in zip(self.lr_lambdas, self._group_lrs())]
        return self._group_lrs()


class ConstantLR(LRScheduler):
    """lr = initial_lr·factor for the first total_iters epochs, then initial_lr (chainable:
    multiplied by factor at epoch 0 and divided by it at epoch total_iters).
    Args: optimizer, factor=1/3 (in [0, 1]), total_iters=5, last_epoch=−1.
    Raises: ValueError for a factor outside [0, 1] (torch's message)."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._group_lrs()]
        if self.last_epoch != self.total_iters:
            return self._group_lrs()
        return [lr * (1.0 / self.factor) for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [b * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)) for b in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Polynomial decay to 0 over total_iters epochs (chainable):
    lr_t = lr_{t−1}·((1 − t/T)/(1 − (t−1)/T))^power for 0 < t ≤ T, constant after
    (closed form initial_lr·(1 − min(t, T)/T)^power).
    Args: optimizer, total_iters=5, power=1.0, last_epoch=−1."""

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T = self.last_epoch, self.total_iters
        if t == 0 or t > T:
            return self._group_lrs()
        factor = ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.power
        return [lr * factor for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [b * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for b in self.base_lrs]


class CyclicLR(LRScheduler):
    """Cyclical learning rates between base_lr and max_lr, stepped after every batch (closed form;
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", torch's CyclicLR):

        cycle = ⌊1 + t / (up + down)⌋,  x = 1 + t/(up + down) − cycle
        s = x / r if x ≤ r else (x − 1)/(r − 1)        (r = up / (up + down))
        lr = base_lr + (max_lr − base_lr)·s·scale(cycle or t),  momentum = max_m − (max_m − base_m)·s·scale

    scale: 'triangular' 1, 'triangular2' 1/2^(cycle−1), 'exp_range' gamma^t, or scale_fn with
    scale_mode 'cycle'/'iterations'. Momentum (or Adam's β1) cycles inversely when cycle_momentum.
    Args (torch's): optimizer, base_lr, max_lr (floats or per-group lists), step_size_up=2000,
        step_size_down=None (= up), mode='triangular', gamma=1.0, scale_fn=None, scale_mode='cycle',
        cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=−1.
    Raises: ValueError for an unknown mode without scale_fn, or cycle_momentum with an optimizer
        without momentum/betas (torch's messages)."""

    def __init__(self, optimizer, base_lr, max_lr, step_size_up: int = 2000, step_size_down=None,
                 mode: str = "triangular", gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
                 cycle_momentum: bool = True, base_momentum=0.8, max_momentum=0.9, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size, self.step_ratio = up + down, up / (up + down)
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode, self.gamma = mode, gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else ("iterations" if mode == "exp_range" else "cycle")
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for m, group in zip(self.max_momentums, optimizer.param_groups):
                    OneCycleLR._set_momentum(self, group, m)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        t = self.last_epoch
        cycle = math.floor(1 + t / self.total_size)
        x = 1.0 + t / self.total_size - cycle
        s = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else t)
        lrs = [b + (m - b) * s * scale for b, m in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for group, b, m in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                OneCycleLR._set_momentum(self, group, m - (m - b) * s * scale)
        return lrs

    def state_dict(self):
        sd = super().state_dict()
        sd.pop("_scale_fn_custom", None)      # a function cannot be saved (as torch)
        return sd


class OneCycleLR(LRScheduler):
    """The 1cycle policy: lr rises from max_lr/div_factor to max_lr over pct_start of the steps,
    then anneals to initial_lr/final_div_factor; momentum (or Adam's β1) cycles inversely.
    Step it after every batch. Closed form (not chainable), as torch.

    Phases (end step, lr from → to, momentum from → to):
        two-phase:   pct_start·T − 1: initial → max, max_m → base_m;  T − 1: max → min, base_m → max_m
        three_phase: adds a symmetric descent to initial at 2·pct_start·T − 2, then initial → min.
    Annealing: cos: end + (start − end)(1 + cos(π·pct))/2;  linear: start + (end − start)·pct.
    Paper: Smith & Topin 2017, "Super-Convergence" (https://arxiv.org/abs/1708.07120).
    Args: optimizer, max_lr (float or per-group list), total_steps or (epochs and steps_per_epoch),
        pct_start=0.3, anneal_strategy='cos', cycle_momentum=True, base_momentum=0.85,
        max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=−1.
    Raises: ValueError for a bad total/epochs/steps_per_epoch/pct_start/anneal_strategy, for
        stepping past total_steps, or cycle_momentum with an optimizer without momentum/betas.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.anneal_strategy = anneal_strategy
        T = self.total_steps
        phase = lambda end, lr0, lr1, m0, m1: dict(end_step=end, start_lr=lr0, end_lr=lr1,  # noqa: E731
                                                   start_momentum=m0, end_momentum=m1)
        if three_phase:
            self._schedule_phases = [
                phase(float(pct_start * T) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                phase(float(2 * pct_start * T) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                phase(T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._schedule_phases = [
                phase(float(pct_start * T) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                phase(T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for m, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = m / div_factor
                group["max_lr"] = m
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            maxs = _per_group("max_momentum", optimizer, max_momentum)
            bases = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m, b, group in zip(maxs, bases, optimizer.param_groups):
                    self._set_momentum(group, m)
                    group["max_momentum"], group["base_momentum"] = m, b
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, m):
        if self.use_beta1:
            group["betas"] = (m, *group["betas"][1:])
        else:
            group["momentum"] = m

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) * cosine_factor(pct)
        return (end - start) * pct + start

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, ph in enumerate(self._schedule_phases):
                end = ph["end_step"]
                if t <= end or i == len(self._schedule_phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(group[ph["start_lr"]], group[ph["end_lr"]], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[ph["start_momentum"]],
                                                               group[ph["end_momentum"]], pct))
                    break
                start = end
        return lrs


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` once a metric has not improved for ``patience`` epochs.

    ``step(metric)`` each epoch: the metric improves if it beats ``best`` by the threshold
    (rel: best·(1 ∓ threshold), abs: best ∓ threshold, for mode min/max); after more than
    ``patience`` bad epochs, lr ← max(lr·factor, min_lr) (skipped if the change ≤ eps), then
    ``cooldown`` epochs during which bad epochs are not counted.
    Args: optimizer, mode='min', factor=0.1 (< 1), patience=10, threshold=1e-4,
        threshold_mode='rel', cooldown=0, min_lr=0 (float or per-group list), eps=1e-8.
    Raises: ValueError for factor ≥ 1, an unknown mode/threshold_mode, a min_lr list of the wrong length.
    """

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr=0, eps: float = 1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.factor, self.optimizer = factor, optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr, self.min_lrs = None, list(min_lr)
        else:
            self.default_min_lr, self.min_lrs = min_lr, [min_lr] * len(optimizer.param_groups)
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.last_epoch = 0
        self._last_lr = self._group_lrs()
        self._init_is_better(mode, threshold, threshold_mode)
        self.best, self.cooldown_counter, self.num_bad_epochs = self.mode_worse, 0, 0

    def step(self, metrics, epoch=None) -> None:
        """Record this epoch's metric (a float or a 1-element Tensor) and maybe reduce the lr."""
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for i, group in enumerate(self.optimizer.param_groups):
                old = float(group["lr"])
                new = max(old * self.factor, self.min_lrs[i])
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._group_lrs()

    def _is_better(self, a, best):
        rel, thr = self.threshold_mode == "rel", self.threshold
        if self.mode == "min":
            return a < best * (1.0 - thr) if rel else a < best - thr
        return a > best * (thr + 1.0) if rel else a > best + thr

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown! (expected 'min' or 'max')")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown! (expected 'rel' or 'abs')")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)


def _check_children(owner, optimizer, schedulers):
    name = type(owner).__name__
    if len(schedulers) < 1:
        raise ValueError(f"{name} expects at least one scheduler, but got no scheduler.")
    for i, sched in enumerate(schedulers):
        if not hasattr(sched, "optimizer"):
            raise TypeError(f"{name} at index {i} should have `optimizer` as its attribute.")
        if isinstance(sched, ReduceLROnPlateau):
            raise ValueError(f"{name} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                             f"kwargs to be specified when calling `step`, but got one at index {i}")
        if sched.optimizer is not optimizer:
            raise ValueError(f"{name} expects all schedulers to belong to the same optimizer, but got scheduler "
                             f"{type(sched).__name__} at index {i} with a different optimizer")


class _Composite(LRScheduler):
    """state_dict/load_state_dict for schedulers made of schedulers (their states nested, as torch)."""

    def state_dict(self):
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        children = state_dict.pop("_schedulers")
        self.__dict__.update(state_dict)
        for sched, sd in zip(self._schedulers, children):
            sched.load_state_dict(sd)


class SequentialLR(_Composite):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at its epoch 0,
    closed form), ... — e.g. a LinearLR warm-up followed by CosineAnnealingLR, exactly as torch.

    Args: optimizer; schedulers (built on this optimizer, not ReduceLROnPlateau); milestones
        (len(schedulers) − 1 increasing step indices); last_epoch=−1.
    Note: as torch, construction rewinds every child by one step and re-initialises the first.
    Raises: ValueError for no scheduler, a wrong number of milestones, a foreign optimizer or
        a ReduceLROnPlateau child; TypeError for a child without ``optimizer``.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        _check_children(self, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("Sequential Schedulers expects number of schedulers provided to be one more than the "
                             f"number of milestone points, but got number of schedulers {len(schedulers)} and the "
                             f"number of milestones to be equal to {len(milestones)}")
        self._schedulers, self._milestones = list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for sched in self._schedulers:  # undo the step each child took when it was built
            sched.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Advance one step, switching to the next scheduler (restarted at 0) at a milestone."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        sched = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            sched._update_lr(0)
        else:
            sched.step()
        self._last_lr = sched.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several chainable schedulers together every step (their factors multiply), as torch;
    e.g. LinearLR warm-up × ExponentialLR decay.

    Args: schedulers (sharing one optimizer, not ReduceLROnPlateau); optimizer (default: theirs).
    Raises: ValueError / TypeError as SequentialLR.
    """

    def __init__(self, schedulers, optimizer=None):
        optimizer = optimizer or (schedulers[0].optimizer if schedulers else None)
        _check_children(self, optimizer, schedulers)
        self._schedulers, self.optimizer = list(schedulers), optimizer
        self._last_lr = self._group_lrs()

    def step(self) -> None:
        """Step every child scheduler in order."""
        for sched in self._schedulers:
            sched.step()
        self._last_lr = self._group_lrs()
