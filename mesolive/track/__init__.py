"""Face IDs across frames, running scores and verdicts."""
