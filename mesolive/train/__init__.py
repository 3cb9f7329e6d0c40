"""Training and fine-tuning MesoNet (PyTorch, optional extra ``mesolive[train]``).

The torch module mirrors :mod:`mesolive.models.arch` layer for layer; trained
weights are written back as a Keras-layout weights file, so the one ONNX graph
builder (and TensorRT, and every command) uses them exactly as the official ones.
"""
