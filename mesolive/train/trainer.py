"""The training loop: the paper's recipe, checkpoints, resume, early stopping.

Defaults follow Afchar et al.: 256×256 RGB in [0, 1], sigmoid output P(real),
Adam at 1e-3 divided by 10 every 1,000 iterations down to 1e-6, batch 75.
The validation split is by video, early stopping watches validation ROC AUC,
and only weights that finished validation are ever registered.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import torch

from mesolive import paths, signals
from mesolive.classify.preprocess import SCALES, Preprocess
from mesolive.env import check_threads
from mesolive.errors import InputError, MesoliveError, check_count
from mesolive.metrics import evaluate, paired_groups
from mesolive.models.arch import ARCHS
from mesolive.train import distributed
from mesolive.train.augment import PRESETS, AugmentConfig, augment
from mesolive.train.blend import BLEND_STYLES, pseudo_fake
from mesolive.train.data import (
    FaceSet,
    check_balance,
    check_kinds,
    collect,
    load_faces,
    split_by_group,
    unseen_aside,
)
from mesolive.train.torch_model import MesoNetTorch
from mesolive.train.validation import (
    as_if_cut_from,
    best_epoch,
    breakdown,
    card_metrics,
    selection_auc,
    unseen_aucs,
)

log = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class TrainingError(MesoliveError):
    """Training cannot start or go on (data, name, disk)."""


@dataclass(frozen=True)
class TrainConfig:
    name: str
    data: tuple[str, ...]
    arch: str = "meso4"
    init: str = "scratch"
    epochs: int = 30
    batch: int = 75
    lr: float = 1e-3
    lr_step: int = 1000  # iterations between divisions by 10
    lr_min: float = 1e-6
    loss: str = "bce"  # "bce" (cross-entropy) or "mse" (the paper's squared error)
    val_fraction: float = 0.1
    patience: int = 5  # epochs without a better validation AUC before stopping
    # validate on the held-out faces also as if cut from this many frame pixels
    # (validation.as_if_cut_from): the best epoch must keep one threshold at any size
    val_sizes: tuple[int, ...] = ()
    # kinds of face (a labels CSV's kind column) never trained on: their faces, and
    # every face of their groups, are validated as forgeries the network has not seen
    # (validation.selection_auc counts each such kind once)
    unseen_kinds: tuple[str, ...] = ()
    seed: int = 0
    device: str = "cpu"
    amp: str = "auto"  # bfloat16 autocast where the CPU has native bf16
    max_minutes: float | None = None
    max_faces_per_video: int = 60
    dropout: float = 0.2  # the authors used 0.5; on DFDC 0.2 trained better (docs/training.md)
    anchor: float = 0.0  # L2-SP: pull towards the --init weights (0: plain fine-tune)
    threads: int | None = None
    # threads that make the next batches (pseudo-fakes, augmentation) while one trains;
    # None: data_workers() decides. Every face's randomness comes from (seed, epoch,
    # index), so the batches do not depend on this count.
    workers: int | None = None
    augment: AugmentConfig = field(default_factory=lambda: PRESETS["light"])
    # share of the fake slots of each epoch filled by self-blended real faces
    # (train/blend.py); 0 trains on the data's own fakes only
    self_blend: float = 0.0
    # how a pseudo-fake is pasted (train/blend.py): "ellipse" over the inner face, or
    # "inswap", as a 128-px live face-swapper pastes its aligned square
    blend_style: str = "ellipse"
    # exponential moving average of the weights, decay per iteration (0: off); the
    # averaged network is the one validated, kept as best and registered
    ema: float = 0.0
    # register the union of the trained network and --init (models/registry.py):
    # the card's validation numbers are the union's
    keep_init: bool = False
    # side of the crop against the authors' square (1.0: theirs; 1/1.3: without their
    # 1.3 margin, which fits inside pre-cut crops such as DFDC's)
    crop_scale: float = 1.0
    # draw the smaller class again each epoch until both classes are as large
    balance: bool = False
    # balance within each data set instead (and make each pseudo-fake from a real face
    # of the data set whose fake slot it fills): a data set whose classes are uneven
    # gives the network a prior it can read from how that data set looks
    balance_sources: bool = False
    # as balance_sources, but first within each group that holds both classes (a pair
    # of a labels CSV: a swap and its original; a DFDC original and the fakes made from
    # it), the data set's other faces evened among themselves: classes drawn unevenly
    # within a pair teach the network that the pair's look is a class
    balance_pairs: bool = False
    # (kind, n): each training face of that kind (a labels CSV's kind column) is drawn
    # n times an epoch, before --balance evens the classes
    kind_weights: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        """Refuse a setting no run can honour, in one line naming its option.

        Checked when the configuration is made, before any face is cut: a
        zero batch or learning-rate step would otherwise fail deep in the
        loop, and a zero or negative epoch count, patience or time limit would
        register the starting weights under the new name as if trained.
        """
        whole = [
            ("--epochs", self.epochs),
            ("--batch", self.batch),
            ("--lr-step", self.lr_step),
            ("--patience", self.patience),
            *(("--val-sizes", side) for side in self.val_sizes),
        ]
        for flag, value in whole:
            check_count(flag, value)
        check_threads(self.threads)
        if self.workers is not None:
            check_count("--workers", self.workers, most=256)
        check_count("--seed", self.seed, least=0)
        for kind, n in self.kind_weights:
            if n < 1:
                raise InputError(f"--kind-weight {kind}={n}: expected a whole number ≥ 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lr {self.lr:g}: expected a learning rate above 0")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"--val-split {self.val_fraction:g}: expected a share between 0 and 1")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise InputError(f"--max-minutes {self.max_minutes:g}: expected minutes above 0")
        if not 0 <= self.dropout < 1:
            raise InputError(f"--dropout {self.dropout:g}: expected a share from 0, below 1")
        if self.blend_style not in BLEND_STYLES:
            raise InputError(
                f"--blend-style {self.blend_style}: expected one of {', '.join(BLEND_STYLES)}"
            )
        if not self.anchor >= 0:  # also NaN
            raise InputError(f"--anchor {self.anchor:g}: expected a strength ≥ 0")
        if not SCALES[0] <= self.crop_scale <= SCALES[1]:  # also NaN
            raise InputError(
                f"--crop-scale {self.crop_scale:g}: expected {SCALES[0]:g} to {SCALES[1]:g}"
            )

    @property
    def contract(self) -> Preprocess:
        """How the trained model sees a face; it goes on its card and registry entry.

        Training cuts every face itself, so crops from other pipelines are
        re-cut the same way wherever the model reads one (``precut``).
        """
        return Preprocess(scale=self.crop_scale, precut="recut")


RESUMABLE = frozenset(
    {"name", "data", "epochs", "patience", "max_minutes", "threads", "workers", "device", "amp"}
)
"""What a ``--resume`` may change: how long and where a run goes on, not what it trains.
(The data themselves are checked by the split's fingerprint.)"""

_FLAGS = {
    "val_fraction": "--val-split",
    "unseen_kinds": "--unseen-kind",
    "kind_weights": "--kind-weight",
    "augment": "--augment",
}


def recipe(cfg: TrainConfig) -> dict:
    """The settings that decide what a run trains (JSON-able): a resumed run keeps them."""
    return {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in RESUMABLE}


def check_same_recipe(cfg: TrainConfig, saved: dict) -> None:
    """Refuse, in one line naming the option, a resume that would change the recipe.

    The card of a resumed run describes one recipe; weights trained half under
    another (another --init, crop, loss, learning rate…) would not be what it says.
    Checkpoints written before recipes were saved pass.
    """
    for key, value in recipe(cfg).items():
        if key in saved and saved[key] != value:
            flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
            values = "" if key == "augment" else f" ({value} against {saved[key]})"
            raise TrainingError(
                f"{flag}: this run's setting differs from the checkpoint's"
                f"{values}; --resume goes on with "
                "the same recipe (only --epochs, --patience, --max-minutes, --threads, "
                "--workers, --device and --amp may change): give the first run's setting, or train "
                "under a new --name"
            )


def data_workers(cfg: TrainConfig) -> int:
    """Threads making batches: ``--workers``, else 1 on the CPU (PyTorch takes the
    cores), else this process's share of the cores (torchrun's ``LOCAL_WORLD_SIZE``
    processes share them) less one, at most 6.

    Measured on an H200 with 16 cores (bench/train.py, one run): a Meso-4 step takes
    14,400 images/s, one thread makes 270 pseudo-faked 'call' images/s, 6 threads 4.3
    times that, 8 threads 4.0 and 12 threads 2.9 (Python holds the GIL between the
    OpenCV calls, so more threads queue on it).
    """
    if cfg.workers:
        return cfg.workers
    if cfg.device == "cpu":
        return 1
    share = (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1))
    return max(1, min(6, share - 1))


def _evened(
    idx: np.ndarray, labels: np.ndarray, rng: np.random.Generator, where: np.ndarray | None = None
) -> np.ndarray:
    """``idx`` with its smaller class drawn again until both are as large.

    ``where`` (a mask over ``idx``) evens only those positions' faces; a part
    that holds one class only is left as it is.
    """
    part = idx if where is None else idx[where]
    fake, real = part[labels[part] == 1], part[labels[part] == 0]
    small, large = sorted((fake, real), key=len)
    if not len(small):
        return idx
    return np.concatenate([idx, rng.choice(small, size=len(large) - len(small), replace=True)])


def lr_at(cfg: TrainConfig, iteration: int) -> float:
    return max(cfg.lr_min, cfg.lr * 0.1 ** (iteration // cfg.lr_step))


def split_fingerprint(val: FaceSet) -> str:
    """sha256 of the held-out groups' names: what ``--resume`` checks the split against."""
    digest = hashlib.sha256()
    for group in sorted(set(val.groups.tolist())):
        digest.update(group.encode() + b"\0")
    return digest.hexdigest()


def _use_bf16(cfg: TrainConfig) -> bool:
    if cfg.amp == "off" or cfg.device != "cpu":
        return False
    if cfg.amp == "bf16":
        return True
    return bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)()) and bool(
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    )


def _to_tensor(contract: Preprocess, batch: np.ndarray, device: str) -> torch.Tensor:
    """(n, H, W, 3) uint8 BGR crops → the network input as the contract builds it."""
    x = torch.from_numpy(contract.to_batch(batch)).to(device)
    return x.contiguous(memory_format=torch.channels_last)


def _loss(cfg: TrainConfig, logits: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    p_real_target = 1.0 - fake  # the network outputs P(real), as the authors'
    if cfg.loss == "mse":
        return torch.mean((torch.sigmoid(logits) - p_real_target) ** 2)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, p_real_target)


@torch.no_grad()
def predict_fake(
    model: torch.nn.Module,
    images: np.ndarray,
    device: str,
    contract: Preprocess,
    batch: int = 150,
    side: int | None = None,
) -> np.ndarray:
    """Fake scores (n,) float32 for (n, S, S, 3) uint8 BGR crops, in eval mode.

    ``side``: score the faces as if cut from that many frame pixels
    (:func:`~mesolive.train.validation.as_if_cut_from`).
    """
    model.eval()
    out = np.empty(len(images), np.float32)
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        if side is not None:
            chunk = as_if_cut_from(chunk, side)
        logits = model(_to_tensor(contract, chunk, device)).float()
        out[i : i + batch] = (1.0 - torch.sigmoid(logits)).cpu().numpy()
    return out


def _atomic_save(obj: object, path: Path) -> None:
    """Write a checkpoint so that a failure (a full disk) keeps the previous one."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)  # in memory: torch's own writer hides OSError's errno
    try:
        with paths.replacing(path) as tmp, open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno in _DISK_FULL:
            raise TrainingError(
                f"{path}: disk full while writing the checkpoint; free space and run "
                "again with --resume (the previous checkpoint is intact)"
            ) from e
        raise


def check_learned(cfg: TrainConfig, state: dict, stale: int) -> None:
    """Refuse to register random weights that no epoch improved on, or that rank the
    validation faces no better than chance.

    They are no model: they scored every face 0.51, under a success headline
    (or, beaten by one epoch that learned only a constant, called every face
    fake at AUC 0.5000). A run that started from a model and never beat it
    registers that model's weights, which the CLI's headline says plainly.
    ``state`` is the run's (``history``, ``epoch``, ``best_auc``), ``stale`` its
    epochs since the last better one.

    Raises
    ------
    TrainingError
        One line: how to go on (``--resume`` with more epochs or patience).
    """
    if cfg.init != "scratch":
        return
    best = best_epoch(state["history"])
    if best > 0 and state["best_auc"] > 0.5:
        return
    more = "a larger --patience" if stale >= cfg.patience else "more --epochs"
    what = (
        f"the best epoch ({best} of {state['epoch']}) ranks the validation faces no better "
        "than chance"
        if best
        else f"no epoch of {state['epoch']} beat the random starting weights"
    )
    raise TrainingError(
        f"{what} (validation AUC {state['best_auc']:.4f}); nothing is registered: go on with "
        f"--resume and {more}, or change the data or --lr"
    )


class Trainer:
    """Runs one training job; ``run()`` returns the registered model's card."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool = False,
        model_dir: str | None = None,
        detector: str | None = None,
        progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None,
        command: str = "",
    ) -> None:
        self.cfg = cfg
        self.resume = resume
        self.model_dir = model_dir
        self.detector = detector  # --detector: the SCRFD file faces are cut with
        self.progress = progress
        self.on_epoch = on_epoch
        self.command = command  # the command line, for the card (how to reproduce it)
        self.work_dir = paths.cache_dir() / "train" / cfg.name
        self.checkpoint = self.work_dir / "checkpoint.pt"
        self.dist = distributed.Dist()  # replaced in run() under torchrun
        self.load_summary = None  # set by _data()
        self.resumed_at = 0  # the checkpoint's epoch when --resume went on from one

    # -- set-up -----------------------------------------------------------------
    def _check_name(self) -> None:
        from mesolive.models.registry import check_model_name, list_specs

        check_model_name(self.cfg.name, "--name")
        if self.cfg.name.lower() == "scratch":
            raise TrainingError("--name scratch: that word means random weights to --init")
        # names differing only in case would be one file on Windows' and macOS' disks
        same = [s.name for s in list_specs() if s.name.lower() == self.cfg.name.lower()]
        if same:
            raise TrainingError(f"a model named {same[0]!r} already exists; choose another --name")
        if self.checkpoint.exists() and not self.resume:
            raise TrainingError(
                f"an unfinished run named {self.cfg.name!r} exists in {self.work_dir}; "
                "continue it with --resume, choose another --name, or delete that folder to "
                "start this run over"
            )
        if self.resume and not self.checkpoint.exists():
            raise TrainingError(f"no checkpoint to resume in {self.work_dir}")

    def _check_resume(self) -> None:
        """A resumed run goes on with the checkpoint's network and recipe (before any
        face is cut)."""
        if self.resume:
            saved = torch.load(self.checkpoint, weights_only=False)["config"]
            if saved["arch"] != self.cfg.arch:
                raise TrainingError(f"the checkpoint is {saved['arch']}, not {self.cfg.arch}")
            check_same_recipe(self.cfg, saved.get("recipe", {}))

    def _check_init(self) -> None:
        """Refuse an unusable --init before any data is read."""
        if self.cfg.init == "scratch":
            if self.cfg.keep_init:
                raise TrainingError("--keep-init needs --init MODEL; from scratch there is none")
            return
        from mesolive.models.registry import get_spec

        spec = get_spec(self.cfg.init)
        if spec.union:
            raise TrainingError(
                f"--init {spec.name} is a union of several networks; fine-tune from one of them"
            )
        if spec.arch != self.cfg.arch:
            raise TrainingError(
                f"--init {spec.name} is a {spec.arch} model; --arch is {self.cfg.arch}"
            )

    def _init_model(self) -> MesoNetTorch:
        model = MesoNetTorch(ARCHS[self.cfg.arch], dropout=self.cfg.dropout)
        if self.cfg.init != "scratch":
            from mesolive.models.keras_h5 import load_keras_weights
            from mesolive.models.registry import get_spec, weights_path

            spec = get_spec(self.cfg.init)
            model.load_meso_weights(load_keras_weights(weights_path(spec, self.model_dir)))
        return model.to(self.cfg.device).to(memory_format=torch.channels_last)

    def _data(self) -> tuple[FaceSet, FaceSet]:
        items = collect(self.cfg.data)
        check_balance(np.array([it.label for it in items]))
        check_kinds((it.kind for it in items), self.cfg.unseen_kinds)
        weighted = [kind for kind, _ in self.cfg.kind_weights]
        check_kinds((it.kind for it in items), weighted, "--kind-weight")
        faces, self.load_summary = load_faces(
            items,
            self.cfg.contract,
            max_faces_per_video=self.cfg.max_faces_per_video,
            detector=self.detector,
            model_dir=self.model_dir,
            threads=self.cfg.threads,
        )
        check_balance(faces.labels)
        tr, va = split_by_group(faces.groups, faces.labels, self.cfg.val_fraction, self.cfg.seed)
        if self.cfg.unseen_kinds:
            tr, va = unseen_aside(faces, tr, va, self.cfg.unseen_kinds)
        log.info(
            "data: %d faces (%d fake), %d groups; training %d, validation %d",
            len(faces),
            int(faces.labels.sum()),
            len(np.unique(faces.groups)),
            len(tr),
            len(va),
        )
        return faces.subset(tr), faces.subset(va)

    # -- loop -------------------------------------------------------------------
    def _starts(self, n: int) -> list[int]:
        """Where each full batch of an n-image epoch starts (one batch if n is smaller)."""
        return list(range(0, n - self.cfg.batch + 1, self.cfg.batch)) or [0]

    def _batches(
        self, train: FaceSet, epoch: int, pool: ThreadPoolExecutor, ahead: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (images, labels) batches, making the next ``ahead`` (one per thread of
        ``pool``) while one trains."""
        cfg = self.cfg
        order = self._epoch_order(train, epoch)
        starts = self.dist.my_batches(self._starts(len(order)))
        blend_from = self._blend_sources(train, order, epoch)

        def make(start: int) -> tuple[np.ndarray, np.ndarray]:
            idx = order[start : start + cfg.batch]
            src = blend_from[start : start + cfg.batch]
            imgs = []
            for i, s in zip(idx, src, strict=True):
                r = np.random.default_rng([cfg.seed, epoch, int(i)])
                # a pseudo-fake keeps the label of the fake slot it fills
                img = (
                    train.images[i]
                    if s < 0
                    else pseudo_fake(train.images[s], r, cfg.blend_style, cfg.crop_scale)
                )
                imgs.append(augment(img, r, cfg.augment))
            return np.stack(imgs), train.labels[idx]

        def submit(start: int) -> Future[tuple[np.ndarray, np.ndarray]]:
            # submit() may start a worker thread; Ctrl+C or a stop signal raised inside
            # Thread.start() leaves that thread unknown to the pool and to the interpreter's
            # exit, which then kills it inside OpenCV: the process aborted (SIGABRT) instead
            # of exiting 130/143 (1 run in ~20 under load). Held, the signal waits for submit.
            with signals.held():
                return pool.submit(make, start)

        pending = deque(submit(s) for s in starts[:ahead])
        for k in range(len(starts)):
            current = pending.popleft().result()
            if k + ahead < len(starts):
                pending.append(submit(starts[k + ahead]))
            yield current

    def _epoch_order(self, train: FaceSet, epoch: int) -> np.ndarray:
        """The training faces of one epoch, shuffled; repeatable from seed and epoch.

        A face of a ``kind_weights`` kind fills that many slots. With
        ``balance`` the smaller class is then drawn again (with replacement)
        until both classes fill as many slots as the larger one. With
        ``balance_sources`` that is done within each data set instead; one that
        holds one class only is left as it is (evening the totals would give the
        others a prior again). With ``balance_pairs`` it is done within each group
        that holds both classes, then within each data set among its faces
        outside such groups.
        """
        rng = np.random.default_rng([self.cfg.seed, epoch])
        idx = np.arange(len(train))
        if self.cfg.kind_weights:
            slots = np.ones(len(train), np.int64)
            for kind, n in self.cfg.kind_weights:
                slots[train.kinds == kind] = n
            idx = np.repeat(idx, slots)
        if self.cfg.balance_pairs:
            names, code = np.unique(train.groups, return_inverse=True)
            both = np.searchsorted(names, paired_groups(train.groups, train.labels))
            paired = np.isin(code, both)
            for group in both:  # thousands with DFDC: integers compare faster than names
                idx = _evened(idx, train.labels, rng, where=code[idx] == group)
            for source in np.unique(train.sources):
                rest = (train.sources[idx] == source) & ~paired[idx]
                idx = _evened(idx, train.labels, rng, where=rest)
        elif self.cfg.balance_sources:
            for source in np.unique(train.sources):
                idx = _evened(idx, train.labels, rng, where=train.sources[idx] == source)
        elif self.cfg.balance:
            idx = _evened(idx, train.labels, rng)
        return idx[rng.permutation(len(idx))]

    def _blend_sources(self, train: FaceSet, order: np.ndarray, epoch: int) -> np.ndarray:
        """(len(order),) int64: per epoch position, the real face to self-blend, or -1.

        A --self-blend share of the fake positions is filled by pseudo-fakes
        made from randomly chosen real training faces, so the epoch length and
        the class balance stay as they are.
        """
        out = np.full(len(order), -1, np.int64)
        share = self.cfg.self_blend
        if share <= 0:
            return out
        rng = np.random.default_rng([self.cfg.seed, epoch, 0x5B1])
        reals = np.flatnonzero(train.labels == 0)
        slots = np.flatnonzero((train.labels[order] == 1) & (rng.random(len(order)) < share))
        if not (self.cfg.balance_sources or self.cfg.balance_pairs):
            out[slots] = rng.choice(reals, size=len(slots))
            return out
        # each from a real face of the data set whose fake slot it fills, where it has one
        slot_sources = train.sources[order[slots]]
        for source in np.unique(slot_sources):
            mine = reals[train.sources[reals] == source]
            at = slots[slot_sources == source]
            out[at] = rng.choice(mine if len(mine) else reals, size=len(at))
        return out

    def _validate(
        self, model: torch.nn.Module, val: FaceSet
    ) -> dict[str, float | dict[str, float]]:
        cfg = self.cfg
        scores = predict_fake(model, val.images, cfg.device, cfg.contract)
        pooled = {f"val_{k}": v for k, v in card_metrics(evaluate(val.labels, scores)).items()}
        pooled["val_pooled_auc"] = pooled["val_auc"]
        pooled["val_auc"] = selection_auc(val, scores, unseen=cfg.unseen_kinds)
        if cfg.unseen_kinds:
            pooled["val_unseen_auc"] = unseen_aucs(val, scores, cfg.unseen_kinds)
        if cfg.val_sizes:
            pooled["val_auc_own_size"] = pooled["val_auc"]
            at = [
                predict_fake(model, val.images, cfg.device, cfg.contract, side=s)
                for s in cfg.val_sizes
            ]
            pooled["val_auc"] = selection_auc(val, scores, *at, unseen=cfg.unseen_kinds)
        return pooled

    def run(self) -> dict:
        """Train, validate, register; under torchrun, every rank returns the card."""
        cfg = self.cfg
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
        self._check_name()
        self._check_resume()
        self._check_init()
        self.dist = distributed.setup(cfg.device)
        if not self.dist.main:  # one voice: rank 0 logs, the others only warn
            logging.getLogger("mesolive").setLevel(logging.WARNING)
        lock = None
        try:
            if self.dist.main:
                lock = self._hold_name()
                self._check_name()  # a run of this name may have ended just before
            card = self._run()
        except BaseException:
            self.dist.close(finished=False)
            raise
        finally:
            if lock is not None:
                lock.close()
        self.dist.close(finished=True)
        return card

    def _hold_name(self) -> IO[str] | None:
        """Hold ``<work_dir>/run.lock`` while this run trains; None where locks do not exist.

        Two runs of one name at once would share a checkpoint and register over
        each other; the second is refused. The operating system drops the lock
        when the process ends, however it ends.
        """
        try:
            import fcntl
        except ImportError:  # Windows
            return None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.work_dir / "run.lock", "a")  # held until run() ends
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.close()
            raise TrainingError(
                f"a run named {self.cfg.name!r} is training now in another process; "
                "let it finish or choose another --name"
            ) from e
        return f

    def _run(self) -> dict:
        cfg, dist = self.cfg, self.dist
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        t_start = time.monotonic()
        train, val = self._data()
        model = self._init_model()
        # Under torchrun the steps go through DDP (gradients averaged across ranks);
        # validation, checkpoints and export use the plain module.
        net: torch.nn.Module = model
        if dist.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(model)
        # L2-SP (Li et al., 2018): penalise distance from the starting weights so
        # that fine-tuning keeps what the authors' network knew.
        start = [p.detach().clone() for p in model.parameters()]
        anchor = cfg.anchor if cfg.init != "scratch" else 0.0
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        # Polyak/EMA weight averaging: the high-rate phase makes validation AUC swing
        # from epoch to epoch; the average is smoother and is what gets judged.
        ema = (
            torch.optim.swa_utils.AveragedModel(
                model,
                multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                use_buffers=True,
            )
            if cfg.ema
            else None
        )
        judged: torch.nn.Module = ema.module if ema is not None else model
        state = {"epoch": 0, "iteration": 0, "best_auc": -1.0, "best": None, "history": []}
        if self.resume:
            ck = torch.load(self.checkpoint, weights_only=False)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if "torch_rng" in ck:  # dropout goes on as if never stopped
                torch.set_rng_state(ck["torch_rng"])
            if ema is not None and "ema" in ck:
                ema.load_state_dict(ck["ema"])
            state = ck["state"]
            held = state.get("split")  # checkpoints before the fingerprint have none
            if held is not None and held != split_fingerprint(val):
                raise TrainingError(
                    "the validation split differs from the checkpoint's (the data or the "
                    "way it is grouped changed): resuming would validate on faces the "
                    "network trained on; train under a new --name"
                )
            # minutes of the earlier runs (older checkpoints: their last epoch's)
            state.setdefault("minutes", state["history"][-1].get("minutes", 0.0))
            state["runs"] = state.get("runs", 1) + 1
            self.resumed_at = state["epoch"]
            log.info(
                "resumed %s at epoch %d of %d (best validation AUC %.4f, %.1f min so far)",
                cfg.name,
                state["epoch"],
                cfg.epochs,
                state["best_auc"],
                state["minutes"],
            )
        else:
            # Baseline: the initial weights' validation AUC (0.5-ish from scratch).
            base = dist.share(self._validate(model, val) if dist.main else None)
            state["best_auc"] = base["val_auc"]
            state["best"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            state["history"].append({"epoch": 0, **base})
        prior_minutes = state.get("minutes", 0.0)  # spent by earlier runs of this model
        if self.command:
            state["commands"] = [*state.get("commands", []), self.command]
        state["n_train"] = len(train)
        state["split"] = split_fingerprint(val)
        names, counts = np.unique(train.sources, return_counts=True)
        state["train_per_source"] = {str(k): int(v) for k, v in zip(names, counts, strict=True)}
        if cfg.balance_pairs:
            state["pairs_evened"] = len(paired_groups(train.groups, train.labels))
            log.info(
                "balance: %d training groups hold both classes, each evened within itself",
                state["pairs_evened"],
            )
        bf16 = _use_bf16(cfg)
        workers = data_workers(cfg)
        log.info(
            "training %s (%s, init %s) for up to %d epochs, batch %d (made by %s), loss %s%s%s",
            cfg.name,
            cfg.arch,
            cfg.init,
            cfg.epochs,
            cfg.batch,
            f"{workers} thread{'s' * (workers > 1)}",
            cfg.loss,
            ", bfloat16 autocast" if bf16 else "",
            f", {dist.world} processes (DDP, batch {cfg.batch} each)" if dist.world > 1 else "",
        )
        from mesolive.progress import progress_bar

        stale = 0
        for h in state["history"][1:]:
            stale = 0 if h.get("improved") else stale + 1
        state.pop("stopped", None)  # an earlier run's reason
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mesolive-augment") as pool:
            epoch_minutes = 0.0  # the last epoch's length, to keep within --max-minutes
            while state["epoch"] < cfg.epochs and stale < cfg.patience:
                used = dist.share((time.monotonic() - t_start) / 60)
                if cfg.max_minutes and used + epoch_minutes > cfg.max_minutes:
                    state["stopped"] = "time limit"
                    log.info(
                        "time limit: %.1f of %g min used and an epoch takes %.1f min",
                        used,
                        cfg.max_minutes,
                        epoch_minutes,
                    )
                    break
                t_epoch = time.monotonic()
                epoch = state["epoch"] + 1
                model.train()
                losses = []
                n_batches = len(dist.my_batches(self._starts(len(self._epoch_order(train, 1)))))
                bar = progress_bar(
                    self._batches(train, epoch, pool, workers),
                    total=n_batches,
                    desc=f"epoch {epoch}/{cfg.epochs}",
                    disable=not (self.progress and dist.main),
                )
                for imgs, labels in bar:
                    signals.check()  # a stop signal whose KeyboardInterrupt was lost
                    for g in opt.param_groups:
                        g["lr"] = lr_at(cfg, state["iteration"])
                    x = _to_tensor(cfg.contract, imgs, cfg.device)
                    y = torch.from_numpy(labels).float().to(cfg.device)
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        logits = net(x)
                    loss = _loss(cfg, logits.float(), y)
                    if anchor:
                        drift = sum(
                            ((p - p0) ** 2).sum()
                            for p, p0 in zip(model.parameters(), start, strict=True)
                        )
                        loss = loss + 0.5 * anchor * drift
                    if not math.isfinite(loss.item()):
                        raise TrainingError(f"the loss diverged at iteration {state['iteration']}")
                    loss.backward()
                    opt.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    state["iteration"] += 1
                    losses.append(loss.item())
                    bar.set_postfix(
                        loss=f"{np.mean(losses[-20:]):.4f}", auc=f"{state['best_auc']:.3f}"
                    )
                bar.close()
                metrics = dist.share(self._validate(judged, val) if dist.main else None)
                improved = metrics["val_auc"] > state["best_auc"]
                if improved:
                    state["best_auc"] = metrics["val_auc"]
                    state["best"] = {k: v.detach().clone() for k, v in judged.state_dict().items()}
                stale = 0 if improved else stale + 1
                record = {
                    "epoch": epoch,
                    "iteration": state["iteration"],
                    "lr": lr_at(cfg, state["iteration"] - 1),
                    "train_loss": float(np.mean(losses)),
                    **metrics,
                    "improved": improved,
                    "minutes": prior_minutes + (time.monotonic() - t_start) / 60,
                }
                state["history"].append(record)
                state["epoch"] = epoch
                state["minutes"] = record["minutes"]
                epoch_minutes = dist.share((time.monotonic() - t_epoch) / 60)
                if not dist.main:
                    continue
                _atomic_save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "state": state,
                        "config": {"arch": cfg.arch, "name": cfg.name, "recipe": recipe(cfg)},
                        "torch_rng": torch.get_rng_state(),
                        **({"ema": ema.state_dict()} if ema is not None else {}),
                    },
                    self.checkpoint,
                )
                if self.on_epoch:
                    self.on_epoch(record)
                unseen = metrics.get("val_unseen_auc", {})
                # with --val-sizes the epochs are chosen on the AUC over every size; the
                # card's (and the closing line's) is the own size's: say which is which
                sizes = (
                    f" over its own size and --val-sizes {' '.join(map(str, cfg.val_sizes))}"
                    if cfg.val_sizes
                    else ""
                )
                own = f", own size {metrics['val_auc_own_size']:.4f}" if cfg.val_sizes else ""
                log.info(  # last: an epoch said is one saved and counted (Ctrl+C names it)
                    "epoch %d: loss %.4f, val AUC %.4f%s (best %.4f)%s, %.1f min%s",
                    epoch,
                    record["train_loss"],
                    metrics["val_auc"],
                    sizes,
                    state["best_auc"],
                    own,
                    record["minutes"],
                    "".join(f"; unseen {k!r} AUC {v:.4f}" for k, v in unseen.items()),
                )
        if state["epoch"] == 0:  # the time limit came before the first epoch
            raise TrainingError(
                f"--max-minutes {cfg.max_minutes:g} ended before the first epoch; nothing is "
                "registered (the cut faces are cached: run again with more minutes)"
            )
        if stale >= cfg.patience and state["epoch"] < cfg.epochs:
            state["stopped"] = "patience"
            log.info(
                "stopped after epoch %d: no better validation AUC in its last %d epoch(s) "
                "(--patience)",
                state["epoch"],
                stale,
            )
        check_learned(cfg, state, stale)
        model.load_state_dict(state["best"])
        seconds = prior_minutes * 60 + time.monotonic() - t_start
        card = self._register(model, val, state, seconds) if dist.main else None
        return dist.share(card)

    # -- hand-over --------------------------------------------------------------
    def _register(self, model: MesoNetTorch, val: FaceSet, state: dict, seconds: float) -> dict:
        """Write Keras-layout weights, validate them through ONNX, then register."""
        from mesolive.backends.onnxruntime import OnnxRuntimeRunner
        from mesolive.classify.mesonet import MesoClassifier
        from mesolive.models.download import sha256_file
        from mesolive.models.keras_h5 import load_keras_weights
        from mesolive.models.onnx_graph import build_onnx
        from mesolive.models.registry import (
            ModelSpec,
            get_spec,
            register_user_model,
            weights_path,
        )
        from mesolive.train.h5_writer import write_keras_h5

        models_dir = paths.cache_dir() / "models"
        staged = write_keras_h5(
            model.cpu().to_meso_weights(), self.work_dir / f"{self.cfg.name}.h5"
        )

        contract = self.cfg.contract

        def onnx_scores(nets: list[Path]) -> np.ndarray:
            graph = build_onnx([load_keras_weights(f) for f in nets]).SerializeToString()
            runner = OnnxRuntimeRunner(graph, threads=self.cfg.threads)
            with MesoClassifier(runner, preprocess=contract) as clf:
                return np.concatenate(
                    [clf.score(val.images[i : i + 128]).fake for i in range(0, len(val), 128)]
                )

        # The ONNX graph of the written file must score the validation set as torch did.
        scores = onnx_scores([staged])
        torch_scores = predict_fake(model, val.images, "cpu", contract)
        gap = float(np.abs(scores - torch_scores).max())
        if gap > 1e-3:
            raise TrainingError(f"exported model disagrees with the trained one (max {gap:.2e})")
        union = (self.cfg.init,) if self.cfg.keep_init else ()
        network_rep = rep = evaluate(val.labels, scores)
        registered_scores = scores
        if union:  # what gets registered is the union: its numbers go on the card
            registered_scores = onnx_scores(
                [staged, weights_path(get_spec(self.cfg.init), self.model_dir)]
            )
            rep = evaluate(val.labels, registered_scores)
        digest = sha256_file(staged)
        final = models_dir / f"{self.cfg.name}.{digest[:8]}.h5"
        models_dir.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)
        cfg_dict = asdict(self.cfg)
        card = {
            "name": self.cfg.name,
            "arch": self.cfg.arch,
            "sha256": digest,
            "file": final.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "preprocess": contract.to_dict(),
            "data": {
                "sources": list(self.cfg.data),
                "train_faces": state["n_train"],
                "train_faces_per_source": state.get("train_per_source", {}),
                **({"pairs_evened": state["pairs_evened"]} if "pairs_evened" in state else {}),
                "validation_faces": len(val),
                "validation_fake": int(val.labels.sum()),
                "split": f"by video, pair or identity: {self.cfg.val_fraction:.0%} of groups, "
                f"seed {self.cfg.seed}",
                "cutting": "every image and sampled video frame through the SCRFD detector "
                "and this model's crop (largest face); pre-cut crops re-framed, padded by "
                "reflection where they lack context",
                **({"loading": asdict(self.load_summary)} if self.load_summary else {}),
            },
            "recipe": {
                k: v
                for k, v in cfg_dict.items()
                if k not in ("name", "data", "max_faces_per_video")
            },
            "seed": self.cfg.seed,
            "union": list(union),
            "validation": {
                **card_metrics(rep),
                "selection_auc": selection_auc(
                    val, registered_scores, unseen=self.cfg.unseen_kinds
                ),
                "onnx_vs_torch_max_diff": gap,
                **breakdown(val, registered_scores),
            },
            **({"network_validation": card_metrics(network_rep)} if union else {}),
            "best_epoch": best_epoch(state["history"]),
            "stopped": state.get("stopped", "epochs"),  # what ended the last run
            "history": state["history"],
            "training_minutes": seconds / 60,  # all runs together, --resume included
            "runs": state.get("runs", 1),
            "commands": state.get("commands", []),
            "torch": torch.__version__,
        }
        (models_dir / f"{self.cfg.name}.card.json").write_text(json.dumps(card, indent=2))
        register_user_model(
            ModelSpec(
                name=self.cfg.name,
                arch=self.cfg.arch,
                forgery="custom",
                file=final.name,
                sha256=digest,
                license="trained locally; see the model card",
                preprocess=contract,
                card=f"{self.cfg.name}.card.json",
                description=f"trained by mesolive train (init {self.cfg.init})"
                + (f", union with {self.cfg.init}" if union else ""),
                union=union,
            )
        )
        log.info("registered %s (%s)", self.cfg.name, final)  # its numbers: the CLI's summary
        return card
