"""Repository-aware checks: pure functions over what edges served (no I/O, no clock)."""
