"""``mesolive scan --cluster ADDRESS``: each input one task on a Ray cluster.

The driver (this process) resolves the model files it would run itself (each
classifier's ONNX graph, the detector and, when there is one, the user-model
registry), connects (:func:`connect`) and puts their bytes in the object
store with their sha256. Each input then becomes one task that runs
:func:`~mesolive.commands.scan.scan_input` with the same
:class:`~mesolive.pipeline.pipeline.PipelineConfig` on a worker and returns
the same :class:`~mesolive.commands.scan.InputReport`, plus the input's CSV
rows when ``--csv`` asked for them. The driver hands reports on in input
order as soon as every earlier input is done, so ``scan`` prints and writes
them exactly as it does for a local run. A task that fails (its worker or
node died, the task raised) is that input's error line; the others finish.

Models on a worker: the node's own cache keeps each shipped file under its
sha256 (``<cache>/cluster/``). A missing file is fetched from the object
store (only then), checked and written; a present one is checked on every
use and, if it fails, refused: that input's error line, since a node whose
files change under it needs a look. A task sees only the shipped files: a
private cache folder (``<cache>/cluster/tasks/``, removed after the task)
holds the graphs under the names the registry expects (``MESOLIVE_CACHE_DIR``
for the task's duration) with ``MESOLIVE_OFFLINE`` on, so a worker never
downloads or converts a model of its own. What a task works out from the
shipped graphs on its node (the reduced-precision verdicts and INT8 graphs of
``--precision auto``, measured once per model and machine) is kept for the
node's later tasks in ``<cache>/cluster/judged/<node>/`` (:func:`_keep_judged`),
as a local scan keeps it in its cache.

Inputs are opened by the workers: a path must name the same file on every
node (a shared file system), or be a URL the nodes can reach.

Threads: each task reserves ``--threads`` CPUs (default 1) and ONNX Runtime
runs that many threads. ONNX Runtime's CPU scores were bit-identical with 1,
2 and 4 threads (measured on the MesoNet graphs and SCRFD), so a cluster
scan gives the scores of a local one, whose default is one thread per core.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesolive.commands.scan import InputReport, _Sink, scan_input
from mesolive.errors import ClusterError, InputError, MesoliveError, ModelError, describe
from mesolive.redact import redact
from mesolive.signals import held, stop_like_ctrl_c

if TYPE_CHECKING:
    from mesolive.pipeline.pipeline import PipelineConfig
    from mesolive.types import FrameResult

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
"""Seconds to reach a cluster's port before saying it cannot be reached.

Ray itself retries an unreachable ``ray://`` address for about 30 s and an
unreachable head (GCS) address for minutes, so the port is tried first.
"""
CLIENT_PORT = 10001  # Ray Client's default port on the head node
CANCEL_GRACE = 5.0  # seconds for cancelled scans to send what they saw
STORE = "cluster"  # the worker's folder of shipped files, under its cache
JUDGED = "judged"  # under STORE: what this node's tasks measured of the shipped graphs
NEEDS_RAY = "--cluster needs Ray: pip install 'mesolive[cluster]'"

_LOCAL = re.compile(r"local(?::(\d+))?")
_CLIENT = re.compile(r"ray://(?:[^@/]*@)?(\[[^\]]+\]|[^:/\[\]]+)(?::(\d+))?/?")


# -- the address ----------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """A parsed ``--cluster`` value: ``auto``, ``local`` (``cpus``: None, all) or ``ray``."""

    text: str
    kind: str
    cpus: int | None = None
    host: str = ""
    port: int = 0


def parse_address(text: str) -> Address:
    """``--cluster``'s value, or a one-line :class:`InputError` naming the forms it takes."""
    if text == "auto":
        return Address(text, "auto")
    m = _LOCAL.fullmatch(text)
    if m:
        cpus = int(m.group(1)) if m.group(1) else None
        if cpus is not None and cpus < 1:
            raise InputError(f"--cluster {text}: give at least 1 CPU (local:N)")
        return Address(text, "local", cpus=cpus)
    m = _CLIENT.fullmatch(text)
    if m:
        port = int(m.group(2) or CLIENT_PORT)
        if not 0 < port < 65536:
            raise InputError(f"--cluster {redact(text)}: {port} is not a port number")
        return Address(text, "ray", host=m.group(1).strip("[]"), port=port)
    raise InputError(f"--cluster {redact(text)}: expected auto, local, local:N or ray://HOST:PORT")


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ClusterError` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ClusterError(NEEDS_RAY) from e
    return ray


def _reachable(address: Address, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise ClusterError(
            f"--cluster {redact(address.text)}: cannot reach {host}:{port} ({reason})"
        ) from e


def _running_head(address: Address) -> str:
    """The head address ``auto`` stands for: ``RAY_ADDRESS``, else the latest ``ray start``.

    Ray has no public call for this; where its private helper has moved, the
    pre-check is skipped and ``ray.init("auto")`` reports a missing cluster
    itself (after Ray's own, longer wait).
    """
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:
        return ""
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError as e:
        raise ClusterError(
            f"--cluster {address.text}: no running Ray cluster found; start one with "
            "'ray start --head', or use --cluster local"
        ) from e


def connect(address: Address, *, verbose: int = 0) -> Any:
    """Connect to (or start) the cluster; returns ``ray``, to be shut down by the caller.

    Each address is first tried for :data:`CONNECT_TIMEOUT` seconds, so an
    address where nothing listens is one line within seconds.

    Raises
    ------
    ClusterError
        Ray is missing, or the cluster cannot be found, reached or started.
    """
    ray = import_ray()
    if address.kind == "auto" and os.environ.get("RAY_ADDRESS", "").startswith("ray://"):
        address = replace(parse_address(os.environ["RAY_ADDRESS"]), text="auto")
    # Ray's own notices (token authentication, …) and the workers' logs only with -v
    quiet = {
        "log_to_driver": verbose > 0,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    try:
        _init(ray, address, quiet)
        stop_like_ctrl_c()  # Ray's core worker took SIGTERM over (a crash dump, exit 1)
        resources = ray.cluster_resources()
    except BaseException:
        # Ctrl+C while a local cluster starts left its agents running (and sometimes
        # crashed the process): what ray.init started ends here
        ray.shutdown()
        raise
    log.info(
        "Ray cluster %s: %g CPUs, %g GPUs",
        redact(address.text),
        resources.get("CPU", 0),
        resources.get("GPU", 0),
    )
    return ray


def _init(ray: Any, address: Address, quiet: dict[str, Any]) -> None:
    """``ray.init`` for ``address``; :class:`ClusterError` where it cannot join or start."""
    try:
        if address.kind == "local":
            with held():
                ray.init(address="local", num_cpus=address.cpus, include_dashboard=False, **quiet)
        elif address.kind == "auto":
            head = _running_head(address)
            if head:
                host, _, port = head.rpartition(":")
                _reachable(address, host.strip("[]"), int(port))
            ray.init(address="auto", **quiet)  # "auto", not head: it also picks up the token
        else:
            _reachable(address, address.host, address.port)
            host = f"[{address.host}]" if ":" in address.host else address.host  # IPv6
            ray.init(address=f"ray://{host}:{address.port}")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as e:
        # what ray.init raises for a cluster it cannot join, start or authenticate to
        raise ClusterError(f"--cluster {redact(address.text)}: {redact(describe(e))}") from e


# -- the models a task needs ----------------------------------------------------------


@dataclass(frozen=True)
class ModelFile:
    """A file the tasks need, as the driver resolved it.

    ``data`` is the object-store reference to the file's bytes; nested in
    this object, Ray hands it to the task as a reference, so a worker fetches
    the bytes only when its node has no copy yet.
    """

    kind: str  # "graph", "detector" or "registry"
    name: str  # the file's name where the task's cache expects it
    sha256: str
    data: Any


def model_files(config: PipelineConfig, *, progress: bool = False) -> list[tuple[str, Path]]:
    """The files a local scan with ``config`` would load, by kind, resolved here.

    Raises
    ------
    MesoliveError
        As a local scan would: a model or the detector cannot be found,
        downloaded or converted.
    """
    from mesolive.detect.scrfd import resolve_detector
    from mesolive.models.registry import get_spec, onnx_path, openvino_graph, user_registry_path

    files = []
    for spec in map(get_spec, config.models):
        graphs = (  # workers run offline: ONNX Runtime's graph and OpenVINO's, where it differs
            onnx_path(spec, "fp32", config.model_dir, progress=progress),
            openvino_graph(spec, config.model_dir, progress=progress),
        )
        files += [("graph", graph) for graph in dict.fromkeys(graphs)]
    files.append(("detector", resolve_detector(config.detector, config.model_dir)))
    registry = user_registry_path()
    if registry.is_file():  # user-trained models are known to the registry only through it
        files.append(("registry", registry))
    return files


def ship(ray: Any, files: list[tuple[str, Path]]) -> list[ModelFile]:
    """Put each file's bytes in the object store, with their sha256."""
    shipped = []
    for kind, path in files:
        data = path.read_bytes()
        shipped.append(ModelFile(kind, path.name, hashlib.sha256(data).hexdigest(), ray.put(data)))
    return shipped


def _stored(store: Path, f: ModelFile) -> Path:
    """This node's checked copy of ``f``: fetched and written on first use, verified every use."""
    from mesolive.models.download import sha256_file
    from mesolive.paths import cannot_write, write_bytes_atomic

    path = store / f"{f.sha256}{Path(f.name).suffix}"
    if path.is_file():
        digest = sha256_file(path)
        if digest != f.sha256:
            raise ModelError(
                f"{path}: this node's copy of {f.name} fails its checksum (sha256 "
                f"{digest[:12]}…, expected {f.sha256[:12]}…): it was changed or damaged; "
                "delete it to have it sent again"
            )
        return path
    import ray

    data = ray.get(f.data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        raise ModelError(
            f"{f.name}: the copy received fails its checksum (sha256 {digest[:12]}…, "
            f"expected {f.sha256[:12]}…); not used"
        )
    try:
        write_bytes_atomic(path, data)  # tasks on one node may write the same file at once
    except OSError as e:
        raise ModelError(cannot_write(path, e)) from e
    return path


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for a block (a worker runs one task at a time)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _task_models(files: list[ModelFile], config: PipelineConfig) -> Iterator[PipelineConfig]:
    """The config to run on this worker, with only the shipped files in reach."""
    from mesolive import paths
    from mesolive.models.registry import USER_REGISTRY, graph_record_path

    store = paths.cache_dir() / STORE
    stored = [(f, _stored(store, f)) for f in files]
    (store / "tasks").mkdir(exist_ok=True)  # a killed worker's folder stays there, not in /tmp
    with tempfile.TemporaryDirectory(prefix="task-", dir=store / "tasks") as tmp:
        cache = Path(tmp)
        (cache / "onnx").mkdir()
        (cache / "models").mkdir()
        detector = None
        for f, path in stored:
            if f.kind == "graph":
                graph = cache / "onnx" / f.name
                shutil.copyfile(path, graph)
                graph_record_path(graph).write_text(f"{f.sha256}  {f.name}\n", encoding="ascii")
            elif f.kind == "registry":
                shutil.copyfile(path, cache / "models" / USER_REGISTRY)
            else:
                detector = str(path)
        judged = store / JUDGED / socket.gethostname()
        shipped = {cache / "onnx" / f.name for f, _ in stored if f.kind == "graph"}
        shipped |= {graph_record_path(graph) for graph in shipped}
        if judged.is_dir():
            for path in judged.iterdir():
                here = cache / "onnx" / path.name
                if here not in shipped and not path.name.startswith("."):  # "." is being written
                    shutil.copyfile(path, here)
        with _environ(MESOLIVE_CACHE_DIR=str(cache), MESOLIVE_OFFLINE="1"):
            yield replace(config, detector=detector, model_dir=None, threads=config.threads or 1)
        _keep_judged(cache / "onnx", judged, shipped)


def _keep_judged(onnx: Path, judged: Path, shipped: set[Path]) -> None:
    """Keep what a task wrote beside the shipped graphs for the node's later tasks.

    Those files (``*.verdict.json``, INT8 graphs and their checksum records)
    are named by a key of everything they depend on; the task read the kept
    ones it was given and wrote anew only what was missing or unusable, so a
    file that differs from the kept one replaces it. A kept graph is checked
    against its record on use, like any cached graph. Not keeping them costs
    the next task the time to judge again, so a folder that cannot be written
    is a warning.
    """
    from mesolive.paths import write_bytes_atomic

    for path in onnx.iterdir():
        kept = judged / path.name
        if path in shipped:
            continue
        try:
            data = path.read_bytes()
            if kept.is_file() and kept.read_bytes() == data:
                continue
            judged.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(kept, data)  # tasks on one node may keep it at once
        except OSError as e:
            log.warning("%s: not kept for later tasks (%s)", kept, e.strerror or e)


# -- one task -------------------------------------------------------------------------


class _KeptRows(_Sink):
    """The CSV rows of one input, kept for the driver, which writes them in input order."""

    def __init__(self, models: tuple[str, ...]) -> None:
        super().__init__(None, models)
        self.kept: list[list[Any]] = []

    def write(self, uri: str, result: FrameResult) -> None:
        self.kept.extend(self.rows(uri, result))


@dataclass
class TaskResult:
    """What one task sends back."""

    report: InputReport
    rows: list[list[Any]] = field(default_factory=list)
    backend: str = ""


def scan_task(
    uri: str,
    config: PipelineConfig,
    files: list[ModelFile],
    *,
    realtime: bool,
    max_frames: int | None,
    keep_rows: bool,
    version: str,
) -> TaskResult:
    """Scan one input on a worker (the body of each Ray task).

    A problem of this worker's (another mesolive version, a model file that
    fails its checksum) is this input's error, naming the node.
    """
    import mesolive
    from mesolive.pipeline.pipeline import FramePipeline

    node = socket.gethostname()
    try:
        if mesolive.__version__ != version:
            raise ClusterError(
                f"this node runs mesolive {mesolive.__version__}, the driver {version}; "
                "install the same version on every node"
            )
        sink = _KeptRows(config.models) if keep_rows else None
        with _task_models(files, config) as here, FramePipeline(here) as pipeline:
            report = scan_input(
                pipeline,
                uri,
                realtime=realtime,
                max_frames=max_frames,
                sink=sink,
                progress=False,
            )
            return TaskResult(report, sink.kept if sink else [], pipeline.backend)
    except MesoliveError as e:
        where = redact(uri)
        return TaskResult(InputReport(where, error=redact(f"{where}: on node {node}: {e}")))


# -- the driver -----------------------------------------------------------------------


def _failed(ray: Any, uri: str, e: Exception) -> InputReport:
    """The error line of an input whose task did not come back."""
    x = ray.exceptions
    where = redact(uri)
    if isinstance(e, x.RayTaskError):  # the task raised: a bug, or a worker without mesolive
        why = describe(e.cause) if e.cause is not None else describe(e)
    elif isinstance(e, x.OutOfMemoryError):
        why = "Ray stopped the worker scanning it: its node ran out of memory"
    elif isinstance(e, x.WorkerCrashedError):
        why = "the worker scanning it died (killed, out of memory, or crashed)"
    elif isinstance(e, x.NodeDiedError | x.ObjectLostError):
        why = "the cluster node scanning it died"
    else:
        why = describe(e)
    return InputReport(where, error=redact(f"{where}: {why}"))


def scan_on_cluster(
    address: str,
    config: PipelineConfig,
    inputs: list[str],
    args: argparse.Namespace,
    sink: _Sink,
    progress: bool,
    done: Callable[[InputReport], None],
) -> str:
    """Scan ``inputs`` as tasks on the cluster at ``address``; returns the back ends that ran.

    ``done`` gets every report in input order, after its CSV rows went to
    ``sink``. Ctrl+C cancels the tasks still running: the inputs done so far
    are reported, then the first unfinished one as interrupted. Ray's own
    notices (a worker that died, a task no node can take) go to stderr:
    ``done`` prints to the stream that was stdout when it was made.
    """
    where = parse_address(address)
    import_ray()  # before any work
    with contextlib.redirect_stdout(sys.stderr):  # Ray prints its notices to stdout
        return _scan_on(where, config, inputs, args, sink, progress, done)


def _scan_on(
    where: Address,
    config: PipelineConfig,
    inputs: list[str],
    args: argparse.Namespace,
    sink: _Sink,
    progress: bool,
    done: Callable[[InputReport], None],
) -> str:
    import mesolive

    files = model_files(config, progress=progress)  # a model problem is found before Ray starts
    ray = connect(where, verbose=getattr(args, "verbose", 0))
    try:
        shipped = ship(ray, files)
        task = ray.remote(num_cpus=config.threads or 1, max_retries=0)(scan_task)
        refs = [
            task.options(name=f"scan {redact(uri)}").remote(
                uri,
                config,
                shipped,
                realtime=args.realtime,
                max_frames=args.max_frames,
                keep_rows=bool(args.csv),
                version=mesolive.__version__,
            )
            for uri in inputs
        ]
        results = _collect(ray, refs, inputs, sink, progress, done)
    finally:
        ray.shutdown()
    backends = dict.fromkeys(r.backend for r in results if r.backend)
    return ", ".join(backends) or "none"


def _collect(
    ray: Any,
    refs: list[Any],
    inputs: list[str],
    sink: _Sink,
    progress: bool,
    done: Callable[[InputReport], None],
) -> list[TaskResult]:
    from mesolive.progress import progress_bar

    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, TaskResult] = {}
    reported = 0

    def report_ready() -> None:
        nonlocal reported
        while reported in results:
            result = results[reported]
            sink.write_rows(result.rows)
            done(result.report)
            reported += 1

    def keep(ref: Any) -> None:
        i = index[ref]
        try:
            results[i] = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            pass  # cancelled before it started: nothing to report
        except ray.exceptions.RayError as e:
            results[i] = TaskResult(_failed(ray, inputs[i], e))

    pending = list(refs)
    with progress_bar(total=len(refs), desc="cluster", unit="input", disable=not progress) as bar:
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    keep(ref)
                    bar.update(1)
                report_ready()
        except KeyboardInterrupt:
            outstanding = [ref for ref in refs if index[ref] not in results]
            for ref in outstanding:
                ray.cancel(ref)  # a running scan stops at its next frame and returns
            ready, _ = ray.wait(outstanding, num_returns=len(outstanding), timeout=CANCEL_GRACE)
            for ref in ready:
                keep(ref)
            if not any(r.report.interrupted for r in results.values()):
                first = next(i for i in range(len(refs)) if i not in results)
                results[first] = TaskResult(InputReport(redact(inputs[first]), interrupted=True))
            for i in sorted(results):  # finished inputs after a gap are reported too
                if i >= reported:
                    sink.write_rows(results[i].rows)
                    done(results[i].report)
    return [results[i] for i in sorted(results)]
