"""``mesolive export triton DIR``: a model repository for NVIDIA Triton Inference Server.

Triton's layout: ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/1/model.onnx``,
one folder per model, named as mesolive names it so that ``--backend
triton://HOST:PORT --model NAME`` finds it. ``model.onnx`` is the fp32 graph
mesolive runs itself, byte for byte; ``config.pbtxt`` takes its tensor
names, types and shapes from that graph (Triton's dims leave out the batch
axis) and opens with a comment stating the model's preprocessing contract:
Triton receives tensors, not faces, so every client must cut and scale them
as the model learnt (mesolive does with ``--backend triton://``).

Without ``--models`` every shipped model is exported: one server serves
clients that each pick a model with ``--model``, and the graphs are small
(0.1-0.2 MB each); user-trained models go in when named.

Every target is checked before anything is converted or written: an existing
non-empty model folder is refused unless ``--force``, which replaces it whole.
Each model folder is written under a hidden temporary name beside it and
renamed into place when complete, so an export that fails never leaves a
half-written model for Triton to choke on at start.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from mesolive import __version__
from mesolive.errors import InputError, ModelError
from mesolive.models import registry
from mesolive.models.download import sha256_file
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME, PROB_NAME

log = logging.getLogger(__name__)

QUEUE_DELAY_US = 500
"""How long Triton's dynamic batcher may hold a request for others to join it:
half a millisecond, far below a 30 fps frame (33 ms), enough for the requests
of concurrent clients to merge into one batch."""
OPT_BATCH = 8
"""The batch also preferred by the dynamic batcher (``build-engine``'s ``--opt-batch``)."""
TRT_WORKSPACE_BYTES = 1 << 30
"""TensorRT builder workspace, as ``build-engine``'s default."""

_TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
}

_CROP_TEXT = {
    "authors": "a square of side {scale:.4g} x 1.3 x 2.2 x\n"
    "max(eye distance, eyes-to-mouth distance), centred on the nose, eyes level",
}
_INTERPOLATION_TEXT = {
    "nearest": "nearest neighbour (PIL NEAREST, OpenCV INTER_NEAREST_EXACT)",
    "linear": "bilinear (OpenCV INTER_LINEAR)",
}
_PRECUT_TEXT = {
    "as-is": "an image that is already a face crop is resized whole",
    "recut": "an image that is already a face crop has its face found and cut again",
}


@dataclass(frozen=True)
class GraphTensor:
    """One input or output as Triton's config states it: dims without the batch axis."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def graph_io(path: Path) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """The inputs and outputs of an ONNX graph whose first axis is a dynamic batch.

    Raises
    ------
    ModelError
        A tensor Triton's config cannot state this way (not float or uint8,
        no dynamic batch axis, another dynamic axis).
    """
    graph = onnx.load(str(path), load_external_data=False).graph

    def tensors(values: Sequence[onnx.ValueInfoProto]) -> list[GraphTensor]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            if t.elem_type not in _TRITON_TYPES or not dims or dims[0] != -1 or -1 in dims[1:]:
                raise ModelError(
                    f"{path}: tensor {v.name!r} is not a dynamic batch of fixed-size float "
                    "or uint8 tensors; Triton's config cannot state it"
                )
            out.append(GraphTensor(v.name, _TRITON_TYPES[t.elem_type], tuple(dims[1:])))
        return out

    return tensors(graph.input), tensors(graph.output)


def contract_comment(spec: registry.ModelSpec, sha256: str) -> list[str]:
    """The comment lines opening a config.pbtxt: what a client must send this model."""
    p = spec.preprocess
    lo, hi = p.value_range
    crop = _CROP_TEXT.get(p.crop, "see mesolive.align.crop").format(scale=p.scale)
    crop = crop.replace("\n", "\n#" + " " * 18)
    return [
        f"# {spec.name}: exported by mesolive {__version__} ('mesolive export triton');",
        f"# 1/model.onnx is mesolive's fp32 graph, sha256 {sha256}.",
        "# Triton receives tensors, not faces: a client must cut and resize every face",
        "# exactly as this model learnt, or its scores mean nothing. The model's contract:",
        f"#   crop:          rule '{p.crop}' at scale {p.scale:.4g}: {crop}",
        f"#   size:          {p.size} x {p.size} pixels",
        f"#   interpolation: {_INTERPOLATION_TEXT.get(p.interpolation, p.interpolation)}",
        f"#   face crops:    {_PRECUT_TEXT.get(p.precut, p.precut)}",
        f"#   input layout:  UINT8 NHWC [batch, {p.size}, {p.size}, 3], BGR as OpenCV holds it;",
        f"#                  the graph maps it to {p.colour.upper()} in {lo:g}..{hi:g} itself",
        f"#   output:        {LOGIT_NAME} is pre-sigmoid, positive means real; {PROB_NAME} = "
        f"sigmoid({LOGIT_NAME});",
        f"#                  fake score = 1 - {PROB_NAME}",
        f"# mesolive does all of this itself: --backend triton://HOST:8001 --model {spec.name}",
    ]


def _tensor_block(kind: str, tensors: list[GraphTensor]) -> list[str]:
    lines = [f"{kind} ["]
    for i, t in enumerate(tensors):
        lines += [
            "  {",
            f'    name: "{t.name}"',
            f"    data_type: {t.data_type}",
            f"    dims: [ {', '.join(map(str, t.dims))} ]",
            "  }" + ("," if i < len(tensors) - 1 else ""),
        ]
    return [*lines, "]"]


def config_text(
    spec: registry.ModelSpec,
    graph: Path,
    *,
    max_batch: int,
    tensorrt: str | None = None,
) -> str:
    """``config.pbtxt`` for ``spec``'s graph (Triton's ``ModelConfig`` in text format).

    ``tensorrt`` (``fp16``/``fp32``) asks Triton's ONNX Runtime backend to run
    the graph through TensorRT on the GPU at that precision.

    Raises
    ------
    ModelError
        The graph does not take the input the model's contract describes.
    """
    inputs, outputs = graph_io(graph)
    size = spec.preprocess.size
    if inputs != [GraphTensor(INPUT_NAME, "TYPE_UINT8", (size, size, 3))] or LOGIT_NAME not in {
        t.name for t in outputs
    }:
        raise ModelError(
            f"{graph}: the graph of {spec.name} does not take the {INPUT_NAME} "
            f"(N, {size}, {size}, 3) UINT8 its contract describes or lacks {LOGIT_NAME}"
        )
    preferred = sorted({min(OPT_BATCH, max_batch), max_batch})
    lines = [
        *contract_comment(spec, sha256_file(graph)),
        f'name: "{spec.name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch}",
        *_tensor_block("input", inputs),
        *_tensor_block("output", outputs),
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
        f"  max_queue_delay_microseconds: {QUEUE_DELAY_US}",
        "}",
    ]
    if tensorrt:
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            f'        parameters {{ key: "precision_mode" value: "{tensorrt.upper()}" }}',
            f'        parameters {{ key: "max_workspace_size_bytes" value: '
            f'"{TRT_WORKSPACE_BYTES}" }}',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def _specs(names: list[str] | None) -> list[registry.ModelSpec]:
    if names is None:
        return [s for s in registry.list_specs() if not s.user]
    return [registry.get_spec(n) for n in dict.fromkeys(names)]


def check_targets(root: Path, names: list[str], *, force: bool) -> None:
    """Refuse, in one line and before any work, a repository this export cannot write."""
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: not a folder")
    for name in names:
        target = root / name
        if target.exists() and not target.is_dir():
            raise InputError(f"{target}: exists and is not a folder; move it away first")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise InputError(
                f"{target}: the folder exists and is not empty; pass --force to replace it"
            )
    parent = root
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # missing folders are made
    if not parent.is_dir():
        raise InputError(f"{root}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{root}: folder {parent} is not writable")


def write_model(target: Path, config: str, graph: Path) -> None:
    """Put ``config`` and a copy of ``graph`` in ``target`` at once (see the module docstring)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    except OSError as e:
        raise InputError(f"{target}: cannot write ({e.strerror or e})") from e
    try:
        stage.chmod(0o755)  # mkdtemp's 0700 would hide it from a server running as another user
        (stage / "config.pbtxt").write_text(config, encoding="utf-8")
        (stage / "1").mkdir()
        shutil.copyfile(graph, stage / "1" / "model.onnx")
        if target.exists():  # --force, or an empty folder
            old = stage.with_suffix(".old")
            os.replace(target, old)
            try:
                os.replace(stage, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, target)
    except OSError as e:
        raise InputError(f"{target}: cannot write ({e.strerror or e})") from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)  # only left when something failed


def _triton(args: argparse.Namespace) -> int:
    if args.max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, got {args.max_batch}")
    specs = _specs(args.models)
    root = Path(args.dir).expanduser()
    check_targets(root, [s.name for s in specs], force=args.force)
    for spec in specs:
        graph = registry.onnx_path(spec, "fp32", args.model_dir, progress=sys.stderr.isatty())
        text = config_text(spec, graph, max_batch=args.max_batch, tensorrt=args.tensorrt)
        write_model(root / spec.name, text, graph)
        print(f"{spec.name}: {root / spec.name}")  # noqa: T201
    log.info("serve it with: tritonserver --model-repository=%s", shlex.quote(str(root.resolve())))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"triton": _triton}[args.export_command](args)
