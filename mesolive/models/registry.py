"""The model registry: which models exist, where their files are, their ONNX.

Official models come from ``resources/models.json`` (download address and
sha256 of the authors' weights). Models a user trains are registered in
``<cache>/models/user_models.json`` with the same fields and then work
everywhere an official model does.

Resolution of a weights file, in order:

1. ``--model-dir`` / ``MESOLIVE_MODEL_DIR``: the file must be there (offline).
2. ``<cache>/models``: used when present and its checksum matches.
3. Otherwise downloaded into ``<cache>/models`` (unless ``MESOLIVE_OFFLINE=1``).

Converted ONNX graphs are cached in ``<cache>/onnx`` under the weights'
checksum, so a changed weights file can never reuse a stale graph.

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
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mesolive import paths
from mesolive.classify.preprocess import AUTHORS, Preprocess
from mesolive.errors import ModelError

log = logging.getLogger(__name__)

CONVERTER_VERSION = 2
"""Bumped whenever the ONNX graph builder changes its output."""

USER_REGISTRY = "user_models.json"


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


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    file: str
    sha256: str  # empty: unknown upstream, recorded at first download (trust on first use)
    license: str
    description: str
    url: str = ""  # download address; for a pack, of the archive holding ``file``
    archive: str = ""  # name of that archive, e.g. ``buffalo_sc.zip``


def _manifest() -> dict:
    path = paths.resources_dir() / "models.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def user_registry_path() -> Path:
    return paths.cache_dir() / "models" / USER_REGISTRY


def _spec(entry: dict, where: str, *, user: bool) -> ModelSpec:
    """A registry entry → ModelSpec; its preprocessing block is checked field by field.

    User entries written before contracts existed carry none: those models
    were trained on the authors' framing, so they get :data:`AUTHORS`.
    """
    name = entry.get("name", "?")
    block = entry.get("preprocess")
    if block is None and not user:
        raise ModelError(f"{where}: model {name!r} has no preprocessing block")
    contract = (
        AUTHORS
        if block is None
        else Preprocess.from_dict(block, f"{where}: model {name!r}")
    )
    fields = {k: v for k, v in entry.items() if k != "preprocess"}
    return ModelSpec(
        **{**fields, "user": user, "union": tuple(entry.get("union", ())), "preprocess": contract}
    )


def _user_specs() -> list[ModelSpec]:
    path = user_registry_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [_spec(m, str(path), user=True) for m in data.get("models", [])]
    except (ValueError, TypeError) as e:
        raise ModelError(f"{path}: unreadable user model registry ({e})") from e


def list_specs() -> list[ModelSpec]:
    where = str(paths.resources_dir() / "models.json")
    official = [_spec(m, where, user=False) for m in _manifest()["models"]]
    return official + _user_specs()


def default_model() -> str:
    """The model every verb and the app use when none is named (the manifest's ``default``)."""
    return str(_manifest().get("default", "meso4-df"))


def list_detectors() -> list[DetectorSpec]:
    return [DetectorSpec(**d) for d in _manifest()["detectors"]]


def get_spec(name: str) -> ModelSpec:
    """The model called ``name``; ``A+B+…`` is the union of the models named."""
    specs = {s.name: s for s in list_specs()}
    parts = name.split("+")
    for part in parts:
        if part not in specs:
            raise ModelError(f"unknown model {part!r}; known models: {', '.join(specs)}")
    if len(parts) == 1:
        return specs[name]
    first = specs[parts[0]]
    for part in parts[1:]:
        if specs[part].preprocess != first.preprocess:
            diff = next(
                k
                for k, v in first.preprocess.to_dict().items()
                if specs[part].preprocess.to_dict()[k] != v
            )
            raise ModelError(
                f"{name}: {parts[0]} and {part} see faces differently (preprocessing "
                f"field {diff!r}); one graph cannot serve both"
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
    """Add (or replace) a user model in the user registry, atomically."""
    path = user_registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    models = [asdict(s) for s in _user_specs() if s.name != spec.name]
    entry = asdict(spec)
    entry["preprocess"] = spec.preprocess.to_dict()
    entry.pop("user")
    models.append(entry)
    for m in models:
        m.pop("user", None)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".user_models.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"schema": 1, "models": models}, f, indent=2)
    os.replace(tmp, path)


def _verified(path: Path, sha256: str) -> bool:
    from mesolive.models.download import sha256_file

    return sha256_file(path) == sha256


def resolve_file(
    file: str,
    sha256: str,
    url: str,
    model_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Return a local, checksum-verified path to a model file.

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
    if os.environ.get("MESOLIVE_OFFLINE") == "1":
        raise ModelError(
            f"{file}: not in {path.parent} and MESOLIVE_OFFLINE=1; "
            "pass --model-dir with a folder that holds it"
        )
    from mesolive.models.download import download

    base = os.environ.get("MESOLIVE_DOWNLOAD_BASE")
    if base:  # a mirror holding the same file names
        url = base.rstrip("/") + "/" + file
    return download(url, path, sha256, progress=progress)


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
        # User models live in the cache whatever --model-dir says.
        return resolve_file(
            spec.file, spec.sha256, "", paths.cache_dir() / "models", progress=progress
        )
    return resolve_file(spec.file, spec.sha256, spec.url, model_dir, progress=progress)


def onnx_path(
    spec: ModelSpec,
    precision: str = "fp32",
    model_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Return the cached ONNX graph of ``spec``, converting the weights if needed.

    A union's graph is keyed by its networks' checksums together.
    """
    nets = networks(spec)
    key = (
        nets[0].sha256
        if len(nets) == 1
        else hashlib.sha256("+".join(n.sha256 for n in nets).encode()).hexdigest()
    )
    onnx_dir = paths.cache_dir() / "onnx"
    out = onnx_dir / f"{spec.name}.{key[:16]}.v{CONVERTER_VERSION}.{precision}.onnx"
    if out.is_file():
        return out
    from mesolive.models.convert import convert_to_onnx

    convert_to_onnx(
        [weights_path(n, model_dir, progress=progress) for n in nets],
        out,
        arch=[n.arch for n in nets],
        precision=precision,
    )
    return out
