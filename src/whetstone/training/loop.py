"""A plain PyTorch training loop with sharpening hooks (no framework needed)."""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..sharpening.allocation import fully_sharpened, get_layer_sharpness, is_fully_sharp
from ..tasks import Classification, Task
from .callbacks import (
    Callback,
    EpochLines,
    GradientClipping,
    MetricsLogger,
    OnEpochRecord,
    StopWhenSharp,
    callback_name,
    callback_states,
    load_callback_states,
    overrides,
)
from .distill import Distillation
from .distributed import Distributed
from .history import EpochRecord, History

if TYPE_CHECKING:  # pragma: no cover
    # not at run time: whetstone.sharpening.schedules imports this package (Callback)
    from ..sharpening.schedules import Sharpener

Batches = Iterable[tuple[Tensor, Tensor]]


_SCHEDULER_ORDER_WARNING = "Detected call of `lr_scheduler.step()`"


class TrainingError(FloatingPointError):
    """Training cannot go on (a NaN or infinite loss)."""


class TrainingInterrupted(Exception):
    """:func:`fit` stopped because ``should_stop`` asked it to (a SIGINT or SIGTERM), after
    handing its position to ``checkpoint``; ``state`` is that position."""

    def __init__(self, message: str, state: LoopState) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class LoopState:
    """Where :func:`fit` stands, between two batches.

    With the states of the model, optimizer, learning-rate schedule, sharpener and random
    generators saved at the same moment, it lets ``fit(..., resume=state)`` continue so that
    the result is bit for bit that of an uninterrupted run.
    """

    epoch: int
    """Epoch in progress (0-based); ``epochs`` once training has finished."""
    batch: int
    """Batches of that epoch already trained (0 at an epoch boundary)."""
    loss_sum: float
    """Sum over those batches of ``loss * batch size`` (float64)."""
    correct: float
    """Sum of the task's per-sample training score over those batches (classification: the
    correct predictions)."""
    seen: int
    """Training samples in those batches."""
    epoch_time: float
    """Training seconds already spent in that epoch."""
    loader: Any
    """``train_loader.state_dict()`` at the start of the epoch (``None`` if it has none)."""
    history: History = field(default_factory=History)
    """Records of the finished epochs."""
    callbacks: list[dict[str, Any]] | None = None
    """The state of each of fit's stateful callbacks (those with a ``state_dict``, the
    sharpener first) at that moment, in their order: ``{"callback": class name, "state":
    callback.state_dict()}``; ``fit(..., resume=state)`` loads them into its callbacks
    (``None``: the caller restores them)."""


@contextmanager
def full_float32() -> Iterator[None]:
    """Disable TF32 in cuDNN convolutions and CUDA matmuls for the block (no effect on CPU).

    PyTorch lets cuDNN convolutions round their inputs to TF32 (10-bit mantissa) by default.
    Training tolerates that, but a binary network's prediction hangs on which side of the
    threshold each pre-activation falls, so evaluation runs in full float32.
    """
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


PRECISIONS = ("float32", "bf16")
"""Training precisions of :func:`fit`: ``"float32"``, or ``"bf16"`` (forward and loss under
``torch.autocast`` with bfloat16; parameters, optimizer state and evaluation stay float32)."""


def training_autocast(precision: str, device: str | torch.device) -> AbstractContextManager:
    """The context of a training step's forward and loss for ``precision`` (:data:`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision == "float32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


@contextmanager
def no_autocast(device: str | torch.device = "cpu") -> Iterator[None]:
    """Autocast off on ``device``'s type (and the CPU) for the block, even inside a caller's
    ``torch.autocast``: evaluation computes in the model's own dtype (float32)."""
    types = dict.fromkeys(("cpu", torch.device(device).type))
    with ExitStack() as stack:
        for device_type in types:
            stack.enter_context(torch.autocast(device_type, enabled=False))
        yield


@torch.no_grad()
def evaluate_metrics(model: nn.Module, loader: Batches, device: str | torch.device = "cpu",
                     task: Task | None = None) -> dict[str, Any]:
    """Every score of ``task``'s meter (default :class:`~whetstone.tasks.Classification`:
    ``accuracy``) for ``model`` on ``loader``, computed in full float32 (:func:`full_float32`,
    and autocast off: :func:`no_autocast`); the model is left in the mode it was in."""
    task = task or Classification()
    meter = task.meter()
    was_training = model.training
    model.eval()
    total = 0
    with full_float32(), no_autocast(device):
        try:
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                meter.update(model(x).float().cpu(), task.target(x, y).cpu())
                total += len(x)
        finally:
            model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    return meter.compute()


def evaluate(model: nn.Module, loader: Batches, device: str | torch.device = "cpu",
             task: Task | None = None) -> float:
    """The primary score of ``task`` (classification: accuracy, the fraction of samples whose
    argmax class is the label) of ``model`` on ``loader`` (:func:`evaluate_metrics`)."""
    task = task or Classification()
    return float(evaluate_metrics(model, loader, device, task)[task.meter().primary])


def evaluate_binary(model: nn.Module, loader: Batches, device: str | torch.device = "cpu",
                    task: Task | None = None) -> float:
    """:func:`evaluate` of the fully sharpened network (every layer at 1), model unchanged."""
    with fully_sharpened(model):
        return evaluate(model, loader, device, task)


STOP_AGREEMENT_EVERY = 16
"""In a data-parallel run the ranks agree on a stop request every this many batches (one
collective each time), so every rank stops after the same batch."""


DIVERGENCE_FACTOR = 10.0
"""An epoch whose mean loss exceeds this many times the lowest epoch loss so far, while its
training accuracy is at chance, has diverged (:func:`check_divergence`)."""


def check_divergence(history: History, loss: float, accuracy: float, chance: float | None,
                     epoch: int) -> None:
    """Raise :class:`TrainingError` if training diverged without a NaN: the epoch's mean
    ``loss`` exploded (over :data:`DIVERGENCE_FACTOR` times the lowest earlier epoch loss of
    ``history``) and its training ``accuracy`` (the task's score) is at ``chance`` (below
    ``1.5 chance``; ``1 / classes`` for classification). ``chance`` ``None``: never."""
    earlier = [r.train_loss for r in history]
    if not earlier or chance is None:
        return
    best = min(earlier)
    if loss > DIVERGENCE_FACTOR * best and accuracy < 1.5 * chance:
        raise TrainingError(
            f"training diverged at epoch {epoch}: mean loss {loss:.4g} is over "
            f"{DIVERGENCE_FACTOR:g} times the best epoch's {best:.4g} and training accuracy "
            f"{100 * accuracy:.1f} % is at chance; lower the learning rate")


def _format_sharpness(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def epoch_line(record: EpochRecord, epochs: int | None) -> str:
    """One plain line for a finished epoch: ``epoch 3/13 loss 0.4120 accuracy 0.8810 val
    0.9010 binary 0.8990 sharpness 1.00/0.50/0.00 (2.1s)`` (``epochs`` ``None``: ``epoch 3
    loss ...``)."""
    val = ("" if record.val_accuracy is None else
           f" val {record.val_accuracy:.4f} binary {record.val_accuracy_binary:.4f}")
    of = "" if epochs is None else f"/{epochs}"
    return (f"epoch {record.epoch + 1}{of} loss {record.train_loss:.4f} {record.metric} "
            f"{record.train_accuracy:.4f}{val} sharpness "
            f"{_format_sharpness(record.sharpness)} ({record.epoch_time:.1f}s)")


def fit(
    model: nn.Module,
    train_loader: Batches,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    sharpener: Sharpener | None = None,
    val_loader: Batches | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    run_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    start_epoch: int = 0,
    stop_when_sharp: bool = False,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    val_every: int = 1,
    channels_last: bool = False,
    clip_grad_norm: float | None = None,
    teacher: nn.Module | None = None,
    distillation: Distillation | None = None,
    precision: str = "float32",
    checkpoint: Callable[[LoopState], None] | None = None,
    resume: LoopState | None = None,
    should_stop: Callable[[], bool] | None = None,
    distributed: Distributed | None = None,
    task: Task | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` for ``epochs`` epochs, sharpening it with ``sharpener``.

    ``callbacks`` (:mod:`whetstone.training.callbacks`) hook into the loop: at the start,
    before each optimizer step, after each batch, at each epoch's end and once its record is
    made, and at the end; one whose
    :meth:`~whetstone.training.callbacks.Callback.stop_reason` gives a reason after an epoch
    stops training there. Several arguments are shorthands that add callbacks,
    in this order: ``sharpener`` (first: a sharpener is a callback), ``clip_grad_norm``
    (:class:`~whetstone.training.callbacks.GradientClipping`), then ``callbacks``, then
    ``run_dir`` (:class:`~whetstone.training.callbacks.MetricsLogger` on
    ``run_dir/metrics.jsonl``), ``on_epoch``, ``progress`` (the per-epoch line,
    :class:`~whetstone.training.callbacks.EpochLines`) and ``stop_when_sharp``
    (:class:`~whetstone.training.callbacks.StopWhenSharp` of the sharpener).

    ``task`` (default :class:`~whetstone.tasks.Classification`) says what the model learns:
    its :meth:`~whetstone.tasks.Task.target` of each batch, its loss and its score.
    Each epoch logs (and returns in the :class:`History`): training loss and score (the
    ``*_accuracy`` fields hold the task's score, named by the record's ``metric``: accuracy
    for classification), the validation score at the current sharpness and of the fully
    sharpened network,
    per-layer sharpness, and the epoch's training time. With ``run_dir`` the records are
    appended to ``run_dir/metrics.jsonl``. ``start_epoch`` resumes a run (the callbacks'
    states, the sharpener's included, must have been restored with ``load_state_dict``).
    ``loss_fn`` (any function of the output and target batches) defaults to the task's loss
    (cross-entropy on the class logits). A NaN or infinite loss raises
    :class:`TrainingError`. ``scheduler`` (a learning-rate scheduler) steps once per epoch.
    ``val_every`` validates every this many epochs (and always after the last one).
    ``channels_last`` stores model and image batches NHWC (faster convolutions on CPU).
    ``on_epoch`` is called with each epoch's :class:`EpochRecord`; ``stop_when_sharp`` ends
    training after the epoch in which the sharpener finished.
    ``clip_grad_norm`` rescales the gradient of all parameters together before each step so
    that its L2 norm is at most this value (:func:`torch.nn.utils.clip_grad_norm_`): a sharpened
    BReLU's slope grows as ``1 / (1 - s + 0.001)``, so optimizers whose step scales with the
    gradient (SGD) may need it.
    ``teacher`` (a trained model with the same classes, e.g. the never-sharpened twin) turns
    the loss into :func:`~whetstone.training.distill.distillation_loss` of ``loss_fn`` and the
    teacher's logits on the same (augmented) batch, with ``distillation``'s temperature and
    weight (default :class:`~whetstone.training.distill.Distillation`); the teacher is run in
    eval mode without gradients and is not changed.
    ``precision`` ``"bf16"`` runs each training step's forward passes (the teacher's too) and
    loss under ``torch.autocast`` with bfloat16 on ``device``'s type; the backward pass, the
    parameters (float32) and the optimizer are unchanged, and validation (:func:`evaluate`)
    runs in full float32 without autocast. ``"float32"`` (the default) uses no autocast.

    Checkpoints and exact resume: ``checkpoint`` is called with the :class:`LoopState` at
    every epoch end (after the learning-rate and sharpening schedules stepped and the record
    was logged) and when ``should_stop()`` (asked after every batch) returns True; then fit
    raises :class:`TrainingInterrupted`. The state holds every stateful callback's
    ``state_dict()`` (the sharpener's included). ``resume`` continues from such a state: the
    caller restores the model, optimizer, scheduler, random generators and ``train_loader``
    (its ``load_state_dict`` with ``resume.loader``) first and passes the same stateful
    callbacks (fit loads their states from ``resume.callbacks``; where that is ``None`` the
    caller restores them too); fit replays the data order of the batches already trained in
    the epoch without training on them, keeps ``resume.history`` and rewrites
    ``run_dir/metrics.jsonl`` from it.

    ``distributed`` (data-parallel training, :mod:`whetstone.training.distributed`): ``model``
    is a ``DistributedDataParallel`` copy and ``train_loader`` this rank's shard; the epoch's
    loss, accuracy and sample count are summed over the ranks before they are recorded or
    handed to the sharpener, and a stop request on any rank stops every rank after the same
    batch (they agree every :data:`STOP_AGREEMENT_EVERY` batches); so does a callback's stop
    request after an epoch. Give ``run_dir`` on rank 0 only.
    """
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be positive, got {clip_grad_norm}")
    autocast = training_autocast(precision, device)  # checks precision before any work
    task = task or Classification()
    loss_fn = loss_fn or task.loss
    model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model.to(memory_format=torch.channels_last)
    history = History(resume.history) if resume is not None else History()
    if resume is not None:
        start_epoch = resume.epoch
    hooks: list[Callback] = [
        *([sharpener] if sharpener is not None else []),
        *([GradientClipping(clip_grad_norm)] if clip_grad_norm is not None else []),
        *callbacks,
        *([MetricsLogger(Path(run_dir) / "metrics.jsonl",
                         append=start_epoch > 0 and resume is None)] if run_dir else []),
        *([OnEpochRecord(on_epoch)] if on_epoch is not None else []),
        *([EpochLines(epochs)] if progress else []),
        *([StopWhenSharp(sharpener)] if stop_when_sharp and sharpener is not None else []),
    ]
    _check_distinct(hooks)
    if resume is not None and resume.callbacks is not None:
        load_callback_states(hooks, resume.callbacks)
    # the per-batch hooks, bound once: a callback that acts per epoch costs nothing per batch
    step_hooks = [cb.on_before_optimizer_step for cb in hooks
                  if overrides(cb, "on_before_optimizer_step")]
    batch_hooks = [cb.on_batch_end for cb in hooks if overrides(cb, "on_batch_end")]
    stoppers = [cb for cb in hooks if overrides(cb, "stop_reason")]
    state_of = getattr(train_loader, "state_dict", None)
    steps = len(train_loader) if hasattr(train_loader, "__len__") else None  # type: ignore[arg-type]
    _call(hooks, "on_train_begin", model, steps_per_epoch=steps)
    if distillation is not None and teacher is None:
        raise ValueError("fit: distillation settings given without a teacher")
    if teacher is not None:
        distillation = distillation or Distillation()
        teacher.to(device).eval()
        if channels_last:
            teacher.to(memory_format=torch.channels_last)

    for epoch in range(start_epoch, epochs):
        model.train()
        # running sums stay on the device: no host copy (and no GPU stall) per batch
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)  # the task's score sum
        seen, skip, spent = 0, 0, 0.0
        trained_here = False
        loader_state = state_of() if state_of is not None else None
        if resume is not None and epoch == resume.epoch:
            loss_sum += resume.loss_sum
            correct += resume.correct
            seen, skip, spent = resume.seen, resume.batch, resume.epoch_time
        t0 = time.perf_counter()
        bar = tqdm(train_loader, total=steps, desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False, dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            if i < skip:  # resuming inside the epoch: same data order and draws, no training
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if x.ndim == 4:
                x = x.contiguous(memory_format=fmt)
            optimizer.zero_grad(set_to_none=True)
            trained_here = True
            target = task.target(x, y)
            with autocast:
                logits = model(x)
                loss = loss_fn(logits, target)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(x)
                    loss = distillation(logits, teacher_logits, loss)  # type: ignore[misc]
            if loss.requires_grad:  # False once every layer is a step with no surrogate
                loss.backward()
                for step_hook in step_hooks:
                    step_hook(model, optimizer)
                optimizer.step()
            for batch_hook in batch_hooks:
                batch_hook(model)
            n = y.shape[0]
            loss_sum += loss.detach().double() * n
            correct += task.score(logits.detach(), target)
            seen += n
            if i % 25 == 0:
                batch_loss = float(loss.detach())
                if not math.isfinite(batch_loss):
                    raise TrainingError(
                        f"loss is {batch_loss} at epoch {epoch}, batch {i}: lower the learning "
                        "rate or check the inputs for NaN"
                    )
                if progress:
                    bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}",
                                    **{task.metric: f"{float(correct) / seen:.4f}"},
                                    s=_format_sharpness(get_layer_sharpness(model)))
            if should_stop is not None and (
                    should_stop() if distributed is None
                    else (i + 1) % STOP_AGREEMENT_EVERY == 0 and distributed.any(should_stop())):
                bar.close()
                state = LoopState(epoch, i + 1, float(loss_sum), float(correct), seen,
                                  spent + time.perf_counter() - t0, loader_state,
                                  History(history), callback_states(hooks))
                if checkpoint is not None:
                    checkpoint(state)
                raise TrainingInterrupted(
                    f"training stopped at epoch {epoch + 1}, batch {i + 1}", state)
        bar.close()
        if distributed is not None:  # every rank records (and sharpens on) the global figures
            totals = distributed.all_reduce_sum(torch.stack(
                [loss_sum, correct, torch.tensor(float(seen), dtype=torch.float64,
                                                 device=loss_sum.device)]))
            loss_sum, correct, seen = totals[0], totals[1], int(totals[2].item())
        if seen == 0:
            raise ValueError("fit: the training loader yielded no samples")
        train_loss = float(loss_sum) / seen
        if not math.isfinite(train_loss):
            raise TrainingError(f"mean training loss is {train_loss} at epoch {epoch}")
        chance = task.chance(logits) if trained_here else None  # None: no batch ran here
        check_divergence(history, train_loss, float(correct) / seen, chance, epoch)
        _call(hooks, "on_epoch_end", model, epoch, train_loss)
        if scheduler is not None:
            with warnings.catch_warnings():  # resumed after the epoch's last batch: no step here
                warnings.filterwarnings("ignore", re.escape(_SCHEDULER_ORDER_WARNING))
                scheduler.step()
        epoch_time = spent + time.perf_counter() - t0

        t1 = time.perf_counter()
        val_acc = val_bin = None
        if val_loader is not None and ((epoch + 1) % val_every == 0 or epoch + 1 == epochs):
            val_acc = evaluate(model, val_loader, device, task)
            sharp = is_fully_sharp(model)
            val_bin = val_acc if sharp else evaluate_binary(model, val_loader, device, task)
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=float(correct) / seen,
            val_accuracy=val_acc,
            val_accuracy_binary=val_bin,
            sharpness=get_layer_sharpness(model),
            epoch_time=epoch_time,
            eval_time=time.perf_counter() - t1,
            metric=task.metric,
            val_metric=task.meter().primary,
        )
        history.append(record)
        _call(hooks, "on_epoch_record", model, record, history)
        if checkpoint is not None:
            checkpoint(LoopState(epoch + 1, 0, 0.0, 0, 0, 0.0,
                                 state_of() if state_of is not None else None, History(history),
                                 callback_states(hooks)))
        if stoppers:
            stop = any([cb.stop_reason() is not None for cb in stoppers])
            if distributed is not None:
                stop = distributed.any(stop, device)
            if stop:
                break
    _call(hooks, "on_train_end", model, history)
    return history


def _call(callbacks: Sequence[object], hook: str, *args: Any, **kwargs: Any) -> None:
    """Call ``hook`` of every callback that has it (in order)."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args, **kwargs)


def _check_distinct(callbacks: Sequence[object]) -> None:
    seen: set[int] = set()
    for cb in callbacks:
        if id(cb) in seen:
            raise ValueError(f"fit: the callback {callback_name(cb)} is given twice (as "
                             "sharpener= and in callbacks=?); give each callback once")
        seen.add(id(cb))
