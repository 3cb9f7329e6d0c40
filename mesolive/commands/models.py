"""``mesolive models list|fetch|convert``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mesolive import paths
from mesolive.errors import InputError, MesoliveError
from mesolive.models import registry


def _names(names: list[str]) -> list[str]:
    """The model names to work on: ``names``, or (none, ``all``) every registered model but
    the user's own. Each is looked up in its turn, so an unknown one is one line and the
    others still run."""
    if not names or names == ["all"]:
        return [s.name for s in registry.list_specs() if not s.user]
    return names


def _file_status(spec: registry.ModelSpec, model_dir: str | None) -> str:
    if spec.builtin:
        return "packaged"
    override = paths.model_dir_override(model_dir)
    if override is not None and not spec.user:
        return "present" if (override / spec.file).is_file() else "missing"
    return "cached" if (paths.cache_dir() / "models" / spec.file).is_file() else "not cached"


def _status(spec: registry.ModelSpec, model_dir: str | None) -> str:
    """A union is as available as its least available network."""
    found = [_file_status(n, model_dir) for n in registry.networks(spec)]
    return next((f for f in found if f in ("missing", "not cached")), found[0])


def _arch(spec: registry.ModelSpec) -> str:
    return "+".join(n.arch for n in registry.networks(spec))


def _list(args: argparse.Namespace) -> int:
    specs = registry.list_specs()
    default = registry.default_model()
    if args.json:
        out = [
            {
                **s.__dict__,
                "preprocess": s.preprocess.to_dict(),
                "default": s.name == default,
                "status": _status(s, args.model_dir),
            }
            for s in specs
        ]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(  # noqa: T201
        f"  {'name':<20} {'arch':<15} {'forgery':<8} {'crop':<6} {'status':<11} licence"
    )
    for s in specs:
        mark = "*" if s.name == default else " "
        print(  # noqa: T201
            f"{mark} {s.name:<20} {_arch(s):<15} {s.forgery:<8} {s.preprocess.scale:<6.3g} "
            f"{_status(s, args.model_dir):<11} {s.license or 'see model card'}"
        )
    spec = registry.get_spec(default)
    why = f": {spec.default_reason}" if spec.default_reason else ""
    card = f" Model card: {registry.card_path(spec)}." if spec.card else ""
    print(f"\n* default model {default}{why}.{card}")  # noqa: T201
    return 0


def _fetch(args: argparse.Namespace) -> int:
    """Each model's weights; one that fails is one line, and the others are still fetched."""
    from mesolive.commands.common import report_error

    status = 0
    for name in _names(args.names):
        try:
            spec = registry.get_spec(name)
            paths_ = [
                registry.weights_path(n, args.model_dir, progress=sys.stderr.isatty())
                for n in registry.networks(spec)
            ]
        except MesoliveError as e:
            report_error(e)
            status = 2
            continue
        print(f"{spec.name}: {', '.join(map(str, paths_))}")  # noqa: T201
    return status


def _convert(args: argparse.Namespace) -> int:
    from mesolive.commands.common import report_error
    from mesolive.models.convert import convert_to_onnx
    from mesolive.outputs import check_outputs, write_atomic

    status = 0
    names = args.names or ["all"]
    files = [n for n in names if n.endswith(".h5")]
    models = _names([n for n in names if not n.endswith(".h5")]) if len(files) < len(names) else []
    if args.arch and names == ["all"]:  # it picks among all, rather than refusing the others
        models = [m for m in models if registry.get_spec(m).arch == args.arch]
    out = Path(args.output).expanduser() if args.output else None
    if out is not None and len(files) + len(models) > 1 and out.suffix == ".onnx":
        raise InputError(f"{out}: one output file for several models; give a folder")

    def dest_for(name: str, folder: Path) -> Path:
        """Where a converted graph goes: ``-o FILE.onnx``, else ``name`` in ``-o DIR`` or
        ``folder``; refused (one line) where it would replace a file without --force."""
        dest = out if out is not None and out.suffix == ".onnx" else (out or folder) / name
        check_outputs({"-o" if out is not None else "output": dest}, files, force=args.force)
        return dest

    for f in files:
        src = Path(f)
        try:
            if not src.is_file():
                raise InputError(f"{src}: no such file")
            dest = dest_for(f"{src.stem}.{args.precision}.onnx", src.parent)
            convert_to_onnx(src, dest, arch=args.arch, precision=args.precision)
        except MesoliveError as e:
            report_error(e)
            status = 2
            continue
        print(f"{src}: {dest}")  # noqa: T201
    for name in models:
        try:
            spec = registry.get_spec(name)
            if args.arch and spec.arch != args.arch:
                raise InputError(f"{spec.name} is a {spec.arch} model, not {args.arch}")
            path = registry.onnx_path(
                spec, args.precision, args.model_dir, progress=sys.stderr.isatty()
            )
            if out is not None:
                dest = dest_for(path.name, out)
                graph = path.read_bytes()
                write_atomic(dest, "-o", lambda f, graph=graph: f.write(graph), mode="wb")
                path = dest
        except MesoliveError as e:
            report_error(e)
            status = 2
            continue
        print(f"{spec.name}: {path}")  # noqa: T201
    return status


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "fetch": _fetch, "convert": _convert}[args.models_command](args)
