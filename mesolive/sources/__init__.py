"""Frame sources by URI: ``webcam:0``, ``screen:1``, ``screen:1@x,y,w,h``, ``window:Title``,
a file path or ``file:PATH``, ``rtsp://…``, ``http(s)://…``, a folder of images, ``test:``.

Use :func:`mesolive.sources.registry.make_source` to get an unopened source and
:func:`mesolive.sources.registry.list_sources` for what this machine offers.
"""
