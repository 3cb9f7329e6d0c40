"""Inference back ends ("runners") behind one contract: see :mod:`.base`."""
