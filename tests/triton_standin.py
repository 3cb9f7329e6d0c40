"""A small stand-in for NVIDIA Triton Inference Server, for tests where there is none.

It is a real gRPC server (grpcio) speaking Triton's protocol with the
messages of tritonclient's own ``service_pb2``/``service_pb2_grpc``, over a
model repository laid out as Triton reads it: ``<repo>/<name>/config.pbtxt``
parsed into ``model_config_pb2.ModelConfig`` and the highest numbered
``<repo>/<name>/<version>/model.onnx``, run by ONNX Runtime on the CPU.

It answers the calls mesolive's client makes as Triton does: ServerLive,
ServerReady, ModelReady (``false`` for an unknown model, not an error),
ModelMetadata (the batch axis as ``-1`` before the config's dims), ModelConfig,
RepositoryIndex (``READY`` or ``UNAVAILABLE`` with the load error as reason)
and ModelInfer (raw tensors; a batch over ``max_batch_size``, an unknown input
or a wrong shape is ``INVALID_ARGUMENT``). A model whose graph does not load
or does not match its config is ``UNAVAILABLE``, as Triton marks it. There is
no dynamic batcher: every request runs alone.

Run it as ``python -m tests.triton_standin REPO [--port N]``: it prints
``PORT <n>`` once it listens on 127.0.0.1, and serves until killed.
"""

from __future__ import annotations

import argparse
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

_DATATYPES = {
    "TYPE_FP32": ("FP32", np.float32),
    "TYPE_FP16": ("FP16", np.float16),
    "TYPE_UINT8": ("UINT8", np.uint8),
}


@dataclass
class _Model:
    config: mc.ModelConfig
    version: str
    session: ort.InferenceSession | None
    reason: str = ""

    def io(self, kind: str) -> list[tuple[str, str, np.dtype, list[int]]]:
        """(name, datatype, numpy dtype, shape with the batch axis) of the config's tensors."""
        out = []
        for t in self.config.input if kind == "input" else self.config.output:
            datatype, dtype = _DATATYPES[mc.DataType.Name(t.data_type)]
            batch = [-1] if self.config.max_batch_size > 0 else []
            out.append((t.name, datatype, np.dtype(dtype), [*batch, *t.dims]))
        return out


def _load(folder: Path) -> _Model:
    config = text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())
    versions = sorted((int(d.name) for d in folder.iterdir() if d.name.isdigit()), reverse=True)
    version = str(versions[0]) if versions else ""
    model = _Model(config, version, None)
    try:
        if config.platform != "onnxruntime_onnx":
            raise ValueError(f"platform {config.platform!r} is not served here")
        session = ort.InferenceSession(
            str(folder / version / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        graph = {i.name: i.shape for i in [*session.get_inputs(), *session.get_outputs()]}
        for name, _, _, shape in model.io("input") + model.io("output"):
            dims = graph.get(name)
            if (
                dims is None
                or len(dims) != len(shape)
                or any(isinstance(g, int) and g != s for g, s in zip(dims, shape, strict=True))
            ):
                raise ValueError(f"tensor {name!r} of the config is not the graph's")
        model.session = session
    except Exception as e:  # noqa: BLE001 - Triton marks the model UNAVAILABLE, with the reason
        model.reason = f"failed to load '{folder.name}' version {version}: {e}"
    return model


class StandIn(pb_grpc.GRPCInferenceServiceServicer):
    """The servicer: every model of ``repo`` loaded once, at start."""

    def __init__(self, repo: Path) -> None:
        self.models = {
            d.name: _load(d)
            for d in sorted(repo.iterdir())
            if d.is_dir() and not d.name.startswith(".")
        }

    def _ready(self, name: str, context: Any) -> _Model:
        model = self.models.get(name)
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}'")
        if model.session is None:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"Request for unknown model: '{name}' has no available versions",
            )
        return model

    def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        model = self.models.get(request.name)
        return pb.ModelReadyResponse(ready=model is not None and model.session is not None)

    def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        model = self._ready(request.name, context)

        def meta(kind: str) -> list[pb.ModelMetadataResponse.TensorMetadata]:
            return [
                pb.ModelMetadataResponse.TensorMetadata(name=n, datatype=d, shape=s)
                for n, d, _, s in model.io(kind)
            ]

        return pb.ModelMetadataResponse(
            name=request.name,
            versions=[model.version],
            platform=model.config.platform,
            inputs=meta("input"),
            outputs=meta("output"),
        )

    def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        return pb.ModelConfigResponse(config=self._ready(request.name, context).config)

    def RepositoryIndex(self, request: Any, context: Any) -> pb.RepositoryIndexResponse:
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=name,
                    version=m.version,
                    state="READY" if m.session is not None else "UNAVAILABLE",
                    reason=m.reason,
                )
                for name, m in self.models.items()
                if m.session is not None or not request.ready
            ]
        )

    def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        model = self._ready(request.model_name, context)
        assert model.session is not None
        specs = {n: (d, t, s) for n, d, t, s in model.io("input")}
        if len(request.raw_input_contents) != len(request.inputs):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "inputs must come as raw contents")
        feed = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            if tensor.name not in specs:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unexpected inference input '{tensor.name}' for model '{request.model_name}'",
                )
            datatype, dtype, shape = specs[tensor.name]
            got = list(tensor.shape)
            batch = model.config.max_batch_size
            if batch and got and got[0] > batch:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"inference request batch-size must be <= {batch} for '{request.model_name}'",
                )
            if (
                tensor.datatype != datatype
                or len(got) != len(shape)
                or any(s not in (-1, g) for s, g in zip(shape, got, strict=True))
            ):
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input '{tensor.name}' got {tensor.datatype} {got}, expected "
                    f"{datatype} {shape}",
                )
            feed[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(got)
        names = [o.name for o in request.outputs] or [n for n, *_ in model.io("output")]
        values = model.session.run(names, feed)
        datatypes = {n: d for n, d, _, _ in model.io("output")}
        return pb.ModelInferResponse(
            model_name=request.model_name,
            model_version=model.version,
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(
                    name=n, datatype=datatypes[n], shape=list(v.shape)
                )
                for n, v in zip(names, values, strict=True)
            ],
            raw_output_contents=[np.ascontiguousarray(v).tobytes() for v in values],
        )


def serve(repo: Path, port: int = 0) -> tuple[grpc.Server, int]:
    """Start serving ``repo`` on 127.0.0.1; returns the server and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 1 << 30)],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(StandIn(repo), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server, port = serve(args.repo, args.port)
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
