"""Face detection: the :class:`FaceDetector` protocol and insightface's SCRFD."""
