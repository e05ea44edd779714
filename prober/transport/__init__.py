"""Transports for probes: HTTP/1.1 (our own client) and HTTP/2 (h2), over asyncio TLS."""
