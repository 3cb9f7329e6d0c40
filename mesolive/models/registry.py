"""The model registry: which models exist, where their files are, their ONNX.

Official models come from ``resources/models.json`` (download address and
sha256 of the authors' weights). Models a user trains are registered in
``<cache>/models/user_models.json`` with the same fields and then work
everywhere an official model does.

Resolution of a weights file, in order:

1. ``--model-dir`` / ``MESOLIVE_MODEL_DIR``: the file must be there (offline).
2. ``<cache>/models``: used when present and its checksum matches.
3. Otherwise downloaded into ``<cache>/models`` (unless ``MESOLIVE_OFFLINE`` is on),
   from the manifest's address or the ``MESOLIVE_DOWNLOAD_BASE`` mirror, and
   kept only when its sha256 matches the manifest's.

Converted ONNX graphs are cached in ``<cache>/onnx`` under the weights'
checksum, so a changed weights file can never reuse a stale graph; each
graph's own sha256 is recorded beside it (``*.onnx.sha256``) and checked on
every use, so a damaged or swapped graph is rebuilt, never run.

Model names become file names, so they are restricted to
:data:`NAME_PATTERN` wherever they come from (:func:`check_model_name`).

A model may be a *union*: its own network plus the models named in ``union``,
one graph that calls a face as fake as its most suspicious network finds it
(``mesolive train --keep-init`` registers one; ``A+B`` names one anywhere a
model name is taken).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mesolive import paths
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.env import env_flag, env_url
from mesolive.errors import ModelError
from mesolive.models.arch import ARCHS

log = logging.getLogger(__name__)

CONVERTER_VERSION = 4
"""Bumped whenever the ONNX graph builder changes its output (4: uint8 pixels in)."""

USER_REGISTRY = "user_models.json"

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A model name: it becomes part of file names."""
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_model_name(name: str, what: str = "model name") -> str:
    """``name`` if it is a safe model name, else a one-line :class:`ModelError`.

    Letters, digits, ``.``, ``_`` and ``-``, at most 64, starting with a
    letter or digit, no ``..``: a name is used in file names under the cache,
    so ``../x`` or ``a/b`` must never reach one.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ModelError(
            f"{what} {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit (no '..')"
        )
    return name


def _check_file_name(name: object, what: str) -> None:
    """A weights or card file must be a plain name inside its folder."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"{what} {name!r}: not a plain file name")


@dataclass(frozen=True)
class ModelSpec:
    """One classifier model: its weights file and where it comes from.

    ``url`` is empty for user-trained models (they exist only locally) and
    for the models shipped inside the package (``builtin``: ``file`` is then
    relative to ``resources/weights``, else to the model folder). ``union``
    names further models whose networks join this one's in its graph (module
    docstring). ``preprocess`` is how the model sees a face; every path that
    cuts or batches faces for it reads this. ``card`` is the model card's
    file (next to the weights), where there is one.
    """

    name: str
    arch: str
    forgery: str
    file: str
    sha256: str
    url: str = ""
    license: str = ""
    description: str = ""
    user: bool = False
    union: tuple[str, ...] = ()
    preprocess: Preprocess = AUTHORS
    builtin: bool = False
    card: str = ""
    default_reason: str = ""
    size: int = 0  # bytes of ``file`` where known: a download may not exceed it


@dataclass(frozen=True)
class DetectorSpec:
    """A face detector file; a pack's (``archive``) is pinned twice.

    ``sha256``/``size`` are those of ``file``; for a pack, ``url`` is the
    upstream release's archive and ``archive_sha256``/``archive_size`` pin it,
    so a mirror (``MESOLIVE_DOWNLOAD_BASE``) may serve it only byte for byte.
    """

    name: str
    file: str
    sha256: str
    license: str
    description: str
    url: str = ""
    archive: str = ""
    archive_sha256: str = ""
    archive_size: int = 0
    size: int = 0


def _manifest() -> dict:
    path = paths.resources_dir() / "models.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def user_registry_path() -> Path:
    return paths.cache_dir() / "models" / USER_REGISTRY


_REQUIRED = ("name", "arch", "forgery", "file", "sha256")
_TEXT = ("url", "license", "description", "card", "default_reason")


def _spec(entry: object, where: str, *, user: bool) -> ModelSpec:
    """A registry entry → ModelSpec, every field checked; a bad one is a ModelError.

    The names in it (its own, its file's, its card's, its union's) must pass
    :func:`check_model_name`; a user entry cannot claim ``builtin`` (which
    would point into the package). User entries written before contracts
    existed carry no preprocessing block: those models were trained on the
    authors' framing, so they get :data:`AUTHORS`.
    """
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: a model entry is {type(entry).__name__}, not an object")
    missing = [k for k in _REQUIRED if not isinstance(entry.get(k), str) or not entry[k]]
    if missing:
        raise ModelError(
            f"{where}: model {entry.get('name', '?')!r} lacks {', '.join(missing)} "
            "(or it is not text)"
        )
    name = check_model_name(entry["name"], f"{where}: model name")
    here = f"{where}: model {name!r}"
    if entry["arch"] not in ARCHS:
        raise ModelError(f"{here}: unknown arch {entry['arch']!r} ({', '.join(ARCHS)})")
    _check_file_name(entry["file"], f"{here}: file")
    if not _SHA256.fullmatch(entry["sha256"]):
        raise ModelError(f"{here}: sha256 is not 64 lower-case hex digits")
    for key in _TEXT:
        if not isinstance(entry.get(key, ""), str):
            raise ModelError(f"{here}: {key} is not text")
    if entry.get("card"):
        _check_file_name(entry["card"], f"{here}: card file")
    union = entry.get("union", [])
    if not isinstance(union, list):
        raise ModelError(f"{here}: union is not a list of model names")
    for member in union:
        check_model_name(member, f"{here}: union member")
    size = entry.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ModelError(f"{here}: size is not a whole number of bytes")
    block = entry.get("preprocess")
    if block is None and not user:
        raise ModelError(f"{here} has no preprocessing block")
    if block is not None and not isinstance(block, dict):
        raise ModelError(f"{here}: its preprocessing block is not an object")
    contract = AUTHORS if block is None else Preprocess.from_dict(block, here)
    known = {f.name for f in fields(ModelSpec)} - {"user", "union", "preprocess"}
    if user:
        known.discard("builtin")
    return ModelSpec(
        **{k: v for k, v in entry.items() if k in known},
        user=user,
        union=tuple(union),
        preprocess=contract,
    )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log a warning about the user registry once per process (it is read often)."""
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


@dataclass(frozen=True)
class _Problem:
    """Something wrong with the user registry: the whole file (``entry`` 0) or one entry."""

    message: str
    entry: int = 0
    name: str = ""

    def warning(self) -> str:
        return f"{self.message}; {'entry' if self.entry else 'all its entries'} ignored"


def _read_user_registry(path: Path, official: set[str]) -> tuple[list[ModelSpec], list[_Problem]]:
    """The usable entries of the user registry at ``path``, and what is wrong with it.

    A malformed file or entry never stops the built-in models: it is named
    in the problems and left out.
    """
    if not path.is_file():
        return [], []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return [], [_Problem(f"{path}: unreadable user model registry ({e})")]
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [
            _Problem(f'{path}: not a user model registry (expected an object with a "models" list)')
        ]
    specs: dict[str, ModelSpec] = {}
    problems = []
    for i, entry in enumerate(entries, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        name = name if isinstance(name, str) else ""
        try:
            spec = _spec(entry, f"{path} entry {i}", user=True)
        except ModelError as e:
            problems.append(_Problem(str(e), i, name))
            continue
        if spec.name in official or spec.name in specs:
            problems.append(
                _Problem(f"{path} entry {i}: model {name!r} is already defined", i, name)
            )
            continue
        specs[spec.name] = spec
    return list(specs.values()), problems


def _official_specs() -> list[ModelSpec]:
    where = str(paths.resources_dir() / "models.json")
    return [_spec(m, where, user=False) for m in _manifest()["models"]]


def _all_specs(asked: tuple[str, ...] = ()) -> tuple[list[ModelSpec], dict[str, str]]:
    """Every usable model, and why each ignored user entry was ignored (by name).

    Ignored entries get a warning, except those of the ``asked`` names: the
    caller's error about them says it instead.
    """
    official = _official_specs()
    user, problems = _read_user_registry(user_registry_path(), {s.name for s in official})
    for problem in problems:
        if problem.name not in asked:
            _warn_once(problem.warning())
    return official + user, {p.name: p.message for p in problems if p.name}


def list_specs() -> list[ModelSpec]:
    return _all_specs()[0]


def default_model() -> str:
    """The model every verb and the app use when none is named (the manifest's ``default``)."""
    return str(_manifest().get("default", "meso4-df"))


def list_detectors() -> list[DetectorSpec]:
    return [DetectorSpec(**d) for d in _manifest()["detectors"]]


def get_spec(name: str) -> ModelSpec:
    """The model called ``name``; ``A+B+…`` is the union of the models named."""
    parts = name.split("+")
    for part in parts:
        check_model_name(part)
    usable, ignored = _all_specs(tuple(parts))
    specs = {s.name: s for s in usable}
    for part in parts:
        if part in ignored and part not in specs:
            raise ModelError(ignored[part])
        if part not in specs:
            raise ModelError(f"unknown model {part!r}; known models: {', '.join(specs)}")
    if len(parts) == 1:
        return specs[name]
    first = specs[parts[0]]
    for part in parts[1:]:
        # How a pre-cut crop is read is the union's (its first model's), as with
        # --keep-init; a face cut from a frame is the same for both.
        other = replace(specs[part].preprocess, precut=first.preprocess.precut)
        if other != first.preprocess:
            diff = next(k for k, v in first.preprocess.to_dict().items() if other.to_dict()[k] != v)
            raise ModelError(
                f"{name}: {parts[0]} and {part} see faces differently (preprocessing "
                f"field {diff!r}), so one graph cannot serve both; run them side by side "
                f"instead (scan and the app: --models {parts[0]},{part})"
            )
    return replace(first, name=name, union=(*first.union, *parts[1:]))


def networks(spec: ModelSpec) -> list[ModelSpec]:
    """The single networks that make up ``spec``: itself alone unless it is a union.

    Nested unions are flattened and a network that appears twice (same
    checksum) is kept once, so ``a+a`` is just ``a``.
    """
    out: dict[str, ModelSpec] = {}

    def add(s: ModelSpec, seen: tuple[str, ...]) -> None:
        # registered names never hold "+", so an ``A+B`` spec's own network is A's
        out.setdefault(s.sha256, replace(s, name=s.name.split("+")[0], union=()))
        for member in s.union:
            if member in seen:
                raise ModelError(f"model {seen[0]!r}: its union refers back to {member!r}")
            add(get_spec(member), (*seen, member))

    add(spec, (spec.name,))
    return list(out.values())


def register_user_model(spec: ModelSpec) -> None:
    """Add (or replace) a user model in the user registry, atomically.

    A registry with entries that cannot be read is first copied aside
    (``user_models.json.broken-<time>``, with a warning): the new registry
    keeps only the usable entries, and nothing of the user's is lost.
    """
    check_model_name(spec.name)
    path = user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    kept, problems = _read_user_registry(path, {s.name for s in _official_specs()})
    if problems:
        backup = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        backup.write_bytes(path.read_bytes())
        more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
        log.warning(
            "%s%s; the file is kept as %s and the new registry holds its usable entries",
            problems[0].message,
            more,
            backup,
        )
    models = [asdict(s) for s in kept if s.name != spec.name]
    entry = asdict(spec)
    entry["preprocess"] = spec.preprocess.to_dict()
    entry.pop("user")
    models.append(entry)
    for m in models:
        m.pop("user", None)
    text = json.dumps({"schema": 1, "models": models}, indent=2)
    paths.write_bytes_atomic(path, text.encode("utf-8"))


def _verified(path: Path, sha256: str) -> bool:
    from mesolive.models.download import sha256_file

    return sha256_file(path) == sha256


def resolve_file(
    file: str,
    sha256: str,
    url: str,
    model_dir: str | os.PathLike[str] | None = None,
    *,
    size: int = 0,
    progress: bool = True,
) -> Path:
    """Return a local, checksum-verified path to a model file.

    ``size`` (bytes, 0: unknown) caps a download
    (:func:`mesolive.models.download.download`).

    Raises
    ------
    ModelError
        The file is missing from an offline folder, fails its checksum, or
        cannot be downloaded; the message names the file and what to do.
    """
    override = paths.model_dir_override(model_dir)
    if override is not None:
        path = override / file
        if not path.is_file():
            raise ModelError(
                f"{path}: model file missing from the model folder; copy {file} there "
                "or drop --model-dir/MESOLIVE_MODEL_DIR to download it"
            )
        if not _verified(path, sha256):
            raise ModelError(
                f"{path}: checksum mismatch (expected sha256 {sha256[:12]}…); "
                "the file is corrupt or a different model"
            )
        return path

    path = paths.cache_dir() / "models" / file
    if path.is_file():
        if _verified(path, sha256):
            return path
        log.warning("%s fails its checksum; removing it and fetching again", path)
        path.unlink()
    if not url:
        raise ModelError(f"{path}: model file is missing and has no download address")
    if env_flag("MESOLIVE_OFFLINE"):
        raise ModelError(
            f"{file}: not in {path.parent} and MESOLIVE_OFFLINE is on; "
            "pass --model-dir with a folder that holds it"
        )
    from mesolive.models.download import download

    base = env_url("MESOLIVE_DOWNLOAD_BASE")
    if base:  # a mirror holding the same file names (and the same checksums)
        url = f"{base}/{file}"
    return download(url, path, sha256, size=size, progress=progress)


def card_path(spec: ModelSpec) -> Path:
    """Where ``spec``'s model card lives (next to its weights)."""
    if spec.builtin:
        return paths.resources_dir() / "weights" / spec.card
    return paths.cache_dir() / "models" / spec.card


def weights_path(
    spec: ModelSpec, model_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> Path:
    if spec.builtin:
        # Shipped inside the package: never downloaded, still checked.
        path = paths.resources_dir() / "weights" / spec.file
        if not path.is_file() or not _verified(path, spec.sha256):
            raise ModelError(
                f"{path}: the packaged weights of {spec.name} are missing or corrupt; "
                "reinstall mesolive"
            )
        return path
    if spec.user:
        # User models live in the cache whatever --model-dir says, and nowhere else.
        folder = paths.cache_dir() / "models"
        if not (folder / spec.file).is_file():
            raise ModelError(
                f"{folder / spec.file}: the weights of {spec.name} are missing; a model "
                "trained here cannot be downloaded: restore the file, or train it again "
                "under another --name (this one stays registered)"
            )
        return resolve_file(spec.file, spec.sha256, "", folder, progress=progress)
    return resolve_file(
        spec.file, spec.sha256, spec.url, model_dir, size=spec.size, progress=progress
    )


def onnx_path(
    spec: ModelSpec,
    precision: str = "fp32",
    model_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    lanes: bool = False,
) -> Path:
    """Return the cached ONNX graph of ``spec``, converting the weights if needed.

    The graph is keyed by its networks' checksums and how its contract maps
    pixels onto the network's input (the graph applies that map). The graph's
    sha256 is recorded beside it at conversion and checked here on every
    call: a graph that fails it, cannot be read or has no record is rebuilt.
    ``lanes`` asks for OpenVINO's layout of a float32 Meso-4 graph
    (:mod:`mesolive.models.lanes_graph`); see :func:`openvino_graph`.
    """
    nets = networks(spec)
    # the graph applies the contract's colour order and value range itself
    key = hashlib.sha256(
        "+".join([*(n.sha256 for n in nets), repr(spec.preprocess.pixel_map())]).encode()
    ).hexdigest()
    onnx_dir = paths.cache_dir() / "onnx"
    layout = "-lanes" if lanes else ""
    out = onnx_dir / f"{spec.name}.{key[:16]}.v{CONVERTER_VERSION}.{precision}{layout}.onnx"
    if out.is_file():
        problem = graph_problem(out)
        if not problem:
            return out
        log.warning("%s %s; rebuilding it", out, problem)
        out.unlink(missing_ok=True)
    from mesolive.models.convert import convert_to_onnx

    convert_to_onnx(
        [weights_path(n, model_dir, progress=progress) for n in nets],
        out,
        arch=[n.arch for n in nets],
        precision=precision,
        contract=spec.preprocess,
        lanes=lanes,
    )
    record_graph(out)
    return out


def openvino_graph(
    spec: ModelSpec, model_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> Path:
    """The float32 graph OpenVINO runs for ``spec``: in lanes where its networks are Meso-4."""
    lanes = all(n.arch == "meso4" for n in networks(spec))
    return onnx_path(spec, "fp32", model_dir, progress=progress, lanes=lanes)


def graph_record_path(graph: Path) -> Path:
    """Where the sha256 of a cached ONNX graph is recorded (``sha256sum`` format)."""
    return graph.with_name(graph.name + ".sha256")


def record_graph(graph: Path) -> None:
    """Record the sha256 of a graph just written into the cache, beside it."""
    from mesolive.models.download import sha256_file

    record = f"{sha256_file(graph)}  {graph.name}\n"
    paths.write_bytes_atomic(graph_record_path(graph), record.encode("ascii"))


def graph_problem(graph: Path) -> str:
    """Why the cached ``graph`` cannot be trusted (``""``: it matches its record)."""
    from mesolive.models.download import sha256_file

    record = graph_record_path(graph)
    try:
        expected = record.read_text(encoding="ascii").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return f"has no readable checksum record ({record.name})"
    try:
        digest = sha256_file(graph)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if digest != expected:
        return (
            f"does not match the sha256 recorded when it was converted "
            f"({digest[:12]}…, recorded {expected[:12]}…): it was changed or damaged"
        )
    return ""
