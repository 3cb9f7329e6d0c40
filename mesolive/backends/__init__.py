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
