"""The live pipeline: capture thread → latest-frame slot → detect, crop, classify, track.

``mailbox.LatestSlot`` and ``capture.CaptureThread`` move frames from a
:class:`~mesolive.sources.base.FrameSource` to the consumer; nothing here
imports Qt.
"""
