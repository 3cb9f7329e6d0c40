"""A stand-in for pycuda (it compiles only where the CUDA toolkit is): see ``driver``."""

VERSION_TEXT = "2025.1.2"
__version__ = VERSION_TEXT
