"""Inference back ends ("runners") behind one contract: see :mod:`.base`.

Nothing heavy is imported here: the command line reads :data:`BACKENDS` for
its help and checks without loading numpy or a runtime.
"""

BACKENDS = (
    "auto",
    "tensorrt",
    "onnxruntime",
    "onnxruntime-cpu",
    "onnxruntime-cuda",
    "openvino",
)
"""The back-end names ``--backend`` takes; ``triton://HOST:PORT`` is the one address form."""

RUNNER_LABELS = {
    "tensorrt": "TensorRT",
    "onnxruntime-cuda": "ONNX Runtime CUDA",
    "onnxruntime-cpu": "ONNX Runtime CPU",
    "onnxruntime-cpu-int8": "ONNX Runtime CPU INT8",
    "native-cpu": "C kernel + ONNX Runtime CPU",
    "openvino-cpu": "OpenVINO CPU",
    "openvino-cpu-bf16": "OpenVINO CPU bfloat16",
    "triton": "Triton",
}
"""What the ``backend:`` log line and the app's status bar call each runner
(by :attr:`~mesolive.backends.base.Runner.name`)."""
