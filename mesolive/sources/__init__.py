"""Frame sources by URI: ``webcam:0``, ``screen:1``, ``screen:0@x,y,w,h``, ``window:Title``,
a file path or ``file:PATH``, ``rtsp://…``, ``http(s)://…``, a folder of images, ``test:``.

Use :func:`mesolive.sources.registry.open_source`.
"""
