"""``mesolive train DATA… --name NAME``: train or fine-tune MesoNet."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from mesolive.errors import BackendUnavailable

log = logging.getLogger(__name__)


def _how_far(finished: list[dict], epochs: int, resumed_at: int = 0) -> str:
    """What an interrupted run leaves behind, and how to go on; ``resumed_at`` is the
    epoch a ``--resume`` went on from (0: none)."""
    if not finished and resumed_at:
        return (
            f"stopped before an epoch of this run finished: the checkpoint of epoch "
            f"{resumed_at} of {epochs} is kept; the same command goes on from it"
        )
    if not finished:
        return (
            "stopped before an epoch of this run finished: the faces cut so far are cached "
            "and any earlier checkpoint is kept, so the same command goes on from there "
            "(with --resume where a checkpoint exists)"
        )
    # a resumed run's command has --resume already: telling it to add one misleads
    how = (
        "the same command goes on from it"
        if resumed_at
        else "add --resume to the same command to go on"
    )
    return f"stopped after epoch {finished[-1]['epoch']} of {epochs}: its checkpoint is kept; {how}"


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable(
            "training needs PyTorch: pip install 'mesolive[train]' (or pip install torch)"
        ) from e
    from mesolive.train.augment import PRESETS
    from mesolive.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(
        name=args.name,
        data=tuple(args.data),
        arch=args.arch,
        init=args.init,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        lr_step=args.lr_step,
        loss=args.loss,
        val_fraction=args.val_split,
        patience=args.patience,
        val_sizes=tuple(args.val_sizes),
        unseen_kinds=tuple(args.unseen_kind),
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        max_minutes=args.max_minutes,
        dropout=args.dropout,
        anchor=args.anchor,
        self_blend=args.self_blend,
        blend_style=args.blend_style,
        ema=args.ema,
        keep_init=args.keep_init,
        crop_scale=args.crop_scale,
        balance=args.balance,
        balance_sources=args.balance_sources,
        balance_pairs=args.balance_pairs,
        kind_weights=tuple(args.kind_weight),
        threads=args.threads,
        workers=args.workers,
        augment=PRESETS[args.augment],
    )
    finished: list[dict] = []  # this run's epoch records, to say how far it got
    trainer = Trainer(
        cfg,
        resume=args.resume,
        model_dir=args.model_dir,
        detector=args.detector,
        progress=sys.stderr.isatty(),
        on_epoch=finished.append,
        command=shlex.join(["mesolive", *args.argv]),
    )
    try:
        card = trainer.run()
    except KeyboardInterrupt:
        if trainer.dist.main:
            log.warning("%s", _how_far(finished, cfg.epochs, trainer.resumed_at))
        raise
    if not trainer.dist.main:  # under torchrun, rank 0 reports
        return 0
    v = card["validation"]
    union = f" (union with {', '.join(card['union'])})" if card.get("union") else ""
    # a run that never beat its start says so here, not only in a warning on stderr
    kept = (
        f" holds {cfg.init}'s weights unchanged: no epoch beat them;"
        if not card["best_epoch"]
        else ""
    )
    print(  # noqa: T201
        f"{card['name']}{union}:{kept} validation AUC {v['selection_auc']:.4f} per source "
        f"(pooled {v['auc']:.4f}) at epoch {card['best_epoch']}, accuracy {v['accuracy']:.3f} "
        f"(real {v['real_accuracy']:.3f}, fake {v['fake_accuracy']:.3f}); "
        f"use it with --model {card['name']}"
    )
    if args.verbose:
        print(json.dumps(card, indent=2))  # noqa: T201
    return 0
