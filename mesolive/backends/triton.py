"""A model served by NVIDIA Triton Inference Server, over gRPC (``--backend triton://HOST:PORT``).

The server holds the graph (``mesolive export triton`` writes its model
repository); this runner sends the batch the model's preprocessing contract
built here and reads ``logit`` back, so a client needs neither the weights
nor a GPU. The Triton model is the one named as mesolive names it.

Opening checks, each call bounded by :data:`CONNECT_TIMEOUT_S`: the server is
live, the model is ready, and the server's metadata for the model (input name,
datatype and shape, and a ``logit`` output) is mesolive's contract for it.
Each failure is one line naming the URL and the model. A server that serves a
model under a name mesolive gives to another network cannot be told apart
here: the repository is the user's to keep right.

Client calls used (tritonclient.grpc): ``InferenceServerClient``,
``is_server_live``, ``is_model_ready``, ``get_model_repository_index`` (only
to say why a model is not ready), ``get_model_metadata``,
``get_model_config`` (``max_batch_size``), ``InferInput``,
``InferRequestedOutput``, ``infer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from mesolive.backends.base import Runner, TensorSpec
from mesolive.errors import BackendUnavailable, InputError, MesoliveError, ModelError
from mesolive.models.arch import INPUT_SIZE
from mesolive.models.onnx_graph import INPUT_NAME, LOGIT_NAME

log = logging.getLogger(__name__)

SCHEME = "triton://"
DEFAULT_PORT = 8001
"""Triton's gRPC port."""
CONNECT_TIMEOUT_S = 5.0
"""Bound of each call made while opening: an unreachable host fails within it."""
INFER_TIMEOUT_S = 60.0
"""Bound of one inference call: a hung server ends the run instead of freezing it."""

_T = TypeVar("_T")


def grpc_target(url: str) -> str:
    """``triton://HOST[:PORT]`` → the ``HOST:PORT`` gRPC dials (port 8001 when left out).

    Raises
    ------
    InputError
        Anything but a scheme, a host and a port (a path, a query, a user).
    """
    usage = f"--backend {url}: expected triton://HOST:PORT (gRPC; the port defaults to 8001)"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise InputError(usage) from None
    if (
        parts.scheme != "triton"
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise InputError(usage)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port or DEFAULT_PORT}"


def _shape(dims: Any) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


class TritonRunner(Runner):
    """One model on a Triton server, behind the :class:`Runner` contract.

    ``max_batch`` is the model's ``max_batch_size`` on the server, so larger
    batches are split here rather than refused there. ``size`` is the side the
    model's preprocessing contract resizes faces to.
    """

    name = "triton"

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        size: int = INPUT_SIZE,
        timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        target = grpc_target(url)
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError as e:
            raise BackendUnavailable(
                f"--backend {url}: tritonclient is not installed; pip install 'mesolive[triton]'"
            ) from e
        self.url = url
        self.model = model_name
        self._grpc = grpcclient
        self._error = InferenceServerException
        self._client: Any = grpcclient.InferenceServerClient(target)
        try:
            self._inputs, self.max_batch = self._check(size, timeout)
        except BaseException:
            self.close()
            raise

    # -- opening ------------------------------------------------------------------------

    def _fail(self, cls: type[MesoliveError], problem: str) -> MesoliveError:
        return cls(f"{self.url}, model {self.model}: {problem}")

    @staticmethod
    def _reason(e: Any) -> str:
        """An InferenceServerException as one line: gRPC status, then the server's message."""
        status = str(e.status() or "").removeprefix("StatusCode.")
        text = " ".join(str(e.message()).split())
        return f"{status}: {text}" if status else text

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        try:
            return fn(*args, **kw)
        except self._error as e:
            raise self._fail(BackendUnavailable, f"{what} ({self._reason(e)})") from e

    def _check(self, size: int, timeout: float) -> tuple[list[TensorSpec], int | None]:
        c = self._client
        if not self._call("no Triton server answers", c.is_server_live, client_timeout=timeout):
            raise self._fail(BackendUnavailable, "the server is not live")
        ready = self._call(
            "the server cannot say whether the model is ready",
            c.is_model_ready,
            self.model,
            client_timeout=timeout,
        )
        if not ready:
            raise self._fail(BackendUnavailable, self._not_ready(timeout))
        meta = self._call(
            "no model metadata", c.get_model_metadata, self.model, client_timeout=timeout
        )
        expected = f"{INPUT_NAME} UINT8{_shape([-1, size, size, 3])}"
        served = ", ".join(f"{t.name} {t.datatype}{_shape(t.shape)}" for t in meta.inputs)
        if served != expected:
            raise self._fail(
                ModelError,
                f"the server's model takes {served or 'no input'}, mesolive's contract "
                f"for it is {expected}; re-export it with 'mesolive export triton'",
            )
        logit = [t for t in meta.outputs if t.name == LOGIT_NAME]
        if not logit or logit[0].datatype != "FP32" or list(logit[0].shape) != [-1, 1]:
            raise self._fail(
                ModelError,
                f"the server's model has no output {LOGIT_NAME} FP32{_shape([-1, 1])}; "
                "re-export it with 'mesolive export triton'",
            )
        config = self._call(
            "no model configuration", c.get_model_config, self.model, client_timeout=timeout
        ).config
        shape = tuple(int(d) for d in meta.inputs[0].shape)
        spec = TensorSpec(INPUT_NAME, shape, np.dtype(np.uint8))
        return [spec], (config.max_batch_size or None)

    def _not_ready(self, timeout: float) -> str:
        """Why the model is not ready: missing from the server, or there but not loaded."""
        try:
            index = self._client.get_model_repository_index(client_timeout=timeout).models
        except self._error:
            return "the server has no such model, or it is not ready"
        states = [m for m in index if m.name == self.model]
        if not states:
            names = sorted({m.name for m in index})
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            serves = f"it serves {', '.join(names[:8])}{more}" if names else "it serves no model"
            return f"the server has no such model ({serves}); 'mesolive export triton' writes it"
        state = states[-1]
        why = " ".join(state.reason.split())
        return f"the model is not ready ({state.state or 'no state'}{': ' + why if why else ''})"

    def describe(self) -> str:
        return f"Triton at {self.url}, model {self.model}, batch <= {self.max_batch or 'any'}"

    # -- the contract -------------------------------------------------------------------

    @property
    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Send one batch; only ``logit`` comes back (mesolive needs nothing else)."""
        if self._client is None:
            raise RuntimeError("runner is closed")
        inputs = []
        for spec in self._inputs:
            array = np.ascontiguousarray(feed[spec.name], dtype=np.uint8)
            tensor = self._grpc.InferInput(spec.name, list(array.shape), "UINT8")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = self._call(
            "inference failed",
            self._client.infer,
            self.model,
            inputs,
            outputs=[self._grpc.InferRequestedOutput(LOGIT_NAME)],
            client_timeout=INFER_TIMEOUT_S,
        )
        return {LOGIT_NAME: np.array(result.as_numpy(LOGIT_NAME), dtype=np.float32)}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
