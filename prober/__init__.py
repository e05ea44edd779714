"""cdnprobe: find the CDN edge that serves different bytes."""

__version__ = "0.1.0"
