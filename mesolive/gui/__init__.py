"""The desktop app (PySide6). The only package of mesolive that imports Qt.

Importing this package imports nothing from Qt; :mod:`mesolive.gui.app` checks
for a display before it loads PySide6.
"""
