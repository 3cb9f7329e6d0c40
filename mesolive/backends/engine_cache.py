"""The engine folder: file names, JSON sidecars, and whether an engine fits this machine.

A serialized TensorRT engine only runs with the TensorRT version that built it
and on GPUs of the compute capability it was built for (TensorRT docs, "Engine
Compatibility"; by default neither version- nor hardware-compatibility mode is
on). It also encodes one exact ONNX graph. So every engine is written as::

    <model>.<onnx-sha8>.<gpu>-sm<cc>.trt<version>.<precision>.engine
    <model>.<onnx-sha8>.<gpu>-sm<cc>.trt<version>.<precision>.json   (the sidecar)

and is loaded only when its sidecar says: same model, same ONNX checksum,
same TensorRT version, same compute capability. Anything else gets one line
saying why, with the exact command that rebuilds it.

"ONNX checksum" is the sha256 of the model's **float32** graph (the file
:func:`mesolive.models.registry.onnx_path` returns): it identifies weights and
converter. The FP16/INT8 graph actually compiled is derived from it and its
own checksum is recorded separately (``graph_sha256``).

Nothing else in :mod:`mesolive.backends` touches the engine folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mesolive import paths
from mesolive.backends.gpuinfo import gpu_slug
from mesolive.errors import EngineBuildError, EngineIncompatible

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = 1
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".json"
PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_MAX_BATCH = 64
DEFAULT_OPT_BATCH = 8


@dataclass(frozen=True)
class Sidecar:
    """What an engine was built from and for (the JSON next to the engine).

    ``profile`` is the optimisation profile's batch range ``{"min", "opt",
    "max"}`` of the input ``input`` (N, 256, 256, 3).
    """

    model: str
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.9"
    precision: str
    profile: dict[str, int]
    build_time: str = ""  # ISO 8601, UTC
    build_seconds: float = 0.0
    graph_sha256: str = ""
    workspace_mb: int = 0
    calibration: dict[str, object] = field(default_factory=dict)
    mesolive_version: str = ""
    schema: int = SIDECAR_SCHEMA

    @property
    def max_batch(self) -> int:
        return int(self.profile.get("max", 1))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Sidecar:
        """Parse a sidecar; ``ValueError`` with the reason when it is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e.msg} at line {e.lineno})") from e
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schema") != SIDECAR_SCHEMA:
            raise ValueError(f"sidecar schema {data.get('schema')!r}, expected {SIDECAR_SCHEMA}")
        known = set(cls.__dataclass_fields__)
        missing = [
            k
            for k in (
                "model",
                "onnx_sha256",
                "trt_version",
                "compute_capability",
                "precision",
                "profile",
                "gpu_name",
            )
            if k not in data
        ]
        if missing:
            raise ValueError(f"sidecar lacks {', '.join(missing)}")
        profile = data["profile"]
        if not isinstance(profile, dict) or not all(
            type(v) is int for v in profile.values()
        ):  # read as {"min", "opt", "max"} batch sizes wherever an engine is listed or loaded
            raise ValueError(f"sidecar profile is not a batch range: {profile!r}")
        return cls(**{k: v for k, v in data.items() if k in known})


def cc_text(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def engine_name(
    model: str,
    onnx_sha256: str,
    gpu_name: str,
    cc: tuple[int, int],
    trt_version: str,
    precision: str,
) -> str:
    """File name of an engine: ``meso4-df.1a2b3c4d.rtx-4090-sm89.trt10.8.0.43.fp16.engine``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    sm = f"sm{cc[0]}{cc[1]}"
    return (
        f"{model}.{onnx_sha256[:8]}.{gpu_slug(gpu_name)}-{sm}.trt{trt_version}."
        f"{precision}{ENGINE_SUFFIX}"
    )


def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(SIDECAR_SUFFIX)


def read_sidecar(engine: Path) -> Sidecar:
    """The sidecar of ``engine``; ``ValueError`` saying why when there is none usable."""
    side = sidecar_path(engine)
    if not side.is_file():
        raise ValueError(f"no sidecar {side.name}")
    return Sidecar.from_json(side.read_text(encoding="utf-8"))


def rebuild_command(
    model: str,
    precision: str,
    max_batch: int = DEFAULT_MAX_BATCH,
    opt_batch: int = DEFAULT_OPT_BATCH,
    engine_dir: Path | None = None,
    *,
    force: bool = False,
) -> str:
    """The exact ``mesolive build-engine`` command line that (re)builds an engine."""
    cmd = f"mesolive build-engine --model {model} --precision {precision}"
    if max_batch != DEFAULT_MAX_BATCH:
        cmd += f" --max-batch {max_batch}"
    if opt_batch != DEFAULT_OPT_BATCH:
        cmd += f" --opt-batch {opt_batch}"
    if precision == "int8":
        cmd += " --calibration FOLDER"
    if engine_dir is not None and Path(engine_dir).resolve() != paths.engine_dir().resolve():
        cmd += f" --engine-dir {engine_dir}"
    if force:
        cmd += " --force"
    return cmd


@dataclass(frozen=True)
class Target:
    """What an engine must have been built for to run here."""

    model: str
    onnx_sha256: str
    trt_version: str
    gpu_name: str
    cc: tuple[int, int]


def mismatch(side: Sidecar, target: Target) -> str:
    """Why an engine with this sidecar cannot run for ``target`` (``""``: it can).

    Checked in the order a user can act on: model, ONNX graph, TensorRT
    version, compute capability. A different GPU *name* with the same compute
    capability is allowed (TensorRT warns that kernels may be slower there).
    """
    if side.model != target.model:
        return f"built for model {side.model}, not {target.model}"
    if side.onnx_sha256 != target.onnx_sha256:
        return (
            f"built from a different ONNX graph (sha256 {side.onnx_sha256[:8]}, this "
            f"model's is {target.onnx_sha256[:8]}): the weights or the converter changed"
        )
    if side.trt_version != target.trt_version:
        return (
            f"built with TensorRT {side.trt_version}, this is TensorRT {target.trt_version} "
            "(engines do not move across TensorRT versions)"
        )
    if side.compute_capability != cc_text(target.cc):
        return (
            f"built for compute capability {side.compute_capability} ({side.gpu_name}), this "
            f"GPU is {cc_text(target.cc)} ({target.gpu_name}) (engines do not move across "
            "GPU architectures)"
        )
    return ""


@dataclass(frozen=True)
class EngineEntry:
    """An engine file in the folder, its sidecar (if readable) and its verdict here."""

    path: Path
    sidecar: Sidecar | None
    problem: str  # "" when it matches the target

    @property
    def matches(self) -> bool:
        return not self.problem


def list_engines(engine_dir: Path, model: str | None = None) -> list[Path]:
    """Engine files in ``engine_dir`` (of ``model`` only, if given), sorted by name."""
    if not engine_dir.is_dir():
        return []
    pattern = f"{model}.*{ENGINE_SUFFIX}" if model else f"*{ENGINE_SUFFIX}"
    return sorted(p for p in engine_dir.glob(pattern) if p.is_file())


def check(engine: Path, target: Target | None) -> EngineEntry:
    """Read ``engine``'s sidecar and compare it with ``target`` (``None``: no GPU here)."""
    try:
        side = read_sidecar(engine)
    except (OSError, ValueError, TypeError) as e:
        return EngineEntry(engine, None, f"unreadable sidecar: {e}")
    if target is None:
        return EngineEntry(engine, side, "no GPU with TensorRT here to run it")
    return EngineEntry(engine, side, mismatch(side, target))


def rebuild_hint(entry: EngineEntry, model: str, engine_dir: Path, target: Target | None) -> str:
    """``"rebuild: mesolive build-engine …"`` for an engine that does not match."""
    side = entry.sidecar
    precision = side.precision if side else entry.path.stem.rsplit(".", 1)[-1]
    if precision not in PRECISIONS:
        precision = "fp16"
    prof = side.profile if side else {}
    same_name = False
    if target is not None:
        fresh = engine_name(
            model, target.onnx_sha256, target.gpu_name, target.cc, target.trt_version, precision
        )
        same_name = fresh == entry.path.name
    cmd = rebuild_command(
        model,
        precision,
        int(prof.get("max", DEFAULT_MAX_BATCH)),
        int(prof.get("opt", DEFAULT_OPT_BATCH)),
        engine_dir,
        force=same_name,
    )
    return f"rebuild: {cmd}"


def find_matching(engine_dir: Path, target: Target) -> tuple[Path, Sidecar]:
    """The engine for ``target`` in ``engine_dir``, newest build first.

    Raises
    ------
    EngineIncompatible
        No engine for the model, or none that fits; one line with the reason
        and the exact command that builds a fitting one.
    """
    files = list_engines(engine_dir, target.model)
    if not files:
        raise EngineIncompatible(
            f"no TensorRT engine for {target.model} in {engine_dir}; build one: "
            f"{rebuild_command(target.model, 'fp16', engine_dir=engine_dir)}"
        )
    entries = [check(f, target) for f in files]
    good = [e for e in entries if e.matches and e.sidecar is not None]
    if good:
        best = max(good, key=lambda e: (e.sidecar.build_time, e.path.name))  # type: ignore[union-attr]
        for e in entries:
            if not e.matches:
                log.debug("%s not used: %s", e.path.name, e.problem)
        return best.path, best.sidecar  # type: ignore[return-value]
    first = entries[0]
    more = f" (and {len(entries) - 1} more that do not match)" if len(entries) > 1 else ""
    raise EngineIncompatible(
        f"{first.path}: {first.problem}{more}; "
        f"{rebuild_hint(first, target.model, engine_dir, target)}"
    )


def write_engine(engine: Path, plan: bytes, side: Sidecar) -> None:
    """Write engine and sidecar atomically (sidecar last: its presence marks a whole engine)."""
    engine.parent.mkdir(parents=True, exist_ok=True)
    for dest, data in ((engine, plan), (sidecar_path(engine), side.to_json().encode())):
        paths.write_bytes_atomic(dest, data)


FAILED_SUFFIX = ".failed"


def failed_path(engine: Path) -> Path:
    """Where an engine that failed verification is kept: ``<engine>.failed``.

    Its sidecar is ``<engine>.failed.json`` and an INT8 engine's Q/DQ graph
    ``<engine>.failed.onnx``. :func:`list_engines` never returns these, so no
    later run loads them; they are there to be looked at, and the next build of
    the same engine replaces them.
    """
    return engine.with_name(engine.name + FAILED_SUFFIX)


def install_verified(
    engine: Path,
    plan: bytes,
    side: Sidecar,
    verify: Callable[[Path], bool],
    extras: Mapping[str, bytes] | None = None,
) -> bool:
    """Write a new plan as ``<engine>.failed``, ``verify`` it there, install it only if it passes.

    ``extras`` are more files of the engine by suffix (``{".onnx": INT8
    graph}``). On success the plan, its sidecar and the extras are written as
    ``engine`` (replacing an older one) and the ``.failed`` files removed. On
    failure they stay ``.failed`` and an engine already at ``engine`` is left
    as it was: a failed rebuild never costs a working engine.
    """
    failed = failed_path(engine)
    files = {"": plan, SIDECAR_SUFFIX: side.to_json().encode(), **(extras or {})}
    engine.parent.mkdir(parents=True, exist_ok=True)
    for suffix, data in files.items():
        paths.write_bytes_atomic(failed.with_name(failed.name + suffix), data)
    if not verify(failed):
        return False
    for suffix, data in (extras or {}).items():
        paths.write_bytes_atomic(engine.with_suffix(suffix), data)
    write_engine(engine, plan, side)
    for suffix in files:
        failed.with_name(failed.name + suffix).unlink(missing_ok=True)
    return True


def retire(engine: Path) -> Path:
    """Move an engine that failed verification (and its sidecar, INT8 graph) to ``.failed``.

    The sidecar goes first: an engine without one is never loaded.
    """
    failed = failed_path(engine)
    for suffix, path in (
        (SIDECAR_SUFFIX, sidecar_path(engine)),
        ("", engine),
        (".onnx", engine.with_suffix(".onnx")),
    ):
        if path.exists():
            path.replace(failed.with_name(failed.name + suffix))
    return failed


def timing_cache_path(
    engine_dir: Path, gpu_name: str, cc: tuple[int, int], trt_version: str
) -> Path:
    """One timing cache per GPU model and TensorRT version (caches do not transfer)."""
    return engine_dir / f"timing.{gpu_slug(gpu_name)}-sm{cc[0]}{cc[1]}.trt{trt_version}.cache"


@contextlib.contextmanager
def locked(path: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``<path>.lock`` (another build on the same cache waits, as Polygraphy does)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=timeout)
    except Timeout as e:
        raise EngineBuildError(
            f"{path}: another build holds its lock for over {timeout:.0f} s; "
            f"delete {path}.lock if no build is running"
        ) from e
    try:
        yield
    finally:
        lock.release()
