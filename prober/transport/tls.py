"""TLS contexts for probing, and their copies with an ALPN offer.

A Fetcher that may speak HTTP/2 offers ALPN on every connection, from one context per Fetcher.
The ALPN offer is set on a copy, never on the context the caller passed: that one may be
shared with a Fetcher that must offer nothing (HTTP/1.1 as apt speaks it).
"""

from __future__ import annotations

import ssl
import weakref

# TLS 1.2 suites in the order Go and browsers use (AES-128-GCM first: as strong for this use
# and about 40% cheaper to decrypt than AES-256-GCM), then Python's own default list.
CIPHERS = (
    "@SECLEVEL=2:ECDH+AESGCM+AES128:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES"
    ":!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
)

# how each context made here was made, so that a copy is made the same way
_RECIPES: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[str | None, bool]] = (
    weakref.WeakKeyDictionary()
)


def make_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.set_ciphers(CIPHERS)
    if insecure:
        # SNI is still sent (server_hostname is the URL's host); only verification is skipped.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _RECIPES[context] = (ca_file, insecure)
    return context


def with_alpn(context: ssl.SSLContext, protocols: list[str]) -> ssl.SSLContext:
    """A copy of `context` offering `protocols` by ALPN (Python has no SSLContext.copy)."""
    recipe = _RECIPES.get(context)
    copy = make_context(*recipe) if recipe is not None else _clone(context)
    copy.set_alpn_protocols(protocols)
    return copy


def _clone(context: ssl.SSLContext) -> ssl.SSLContext:
    # A context from elsewhere: copy what the ssl module lets us read (client certificates
    # cannot be read back; pass a context from make_context to keep them).
    copy = ssl.SSLContext(context.protocol)
    copy.options = context.options
    copy.verify_flags = context.verify_flags
    copy.minimum_version, copy.maximum_version = context.minimum_version, context.maximum_version
    copy.check_hostname = False
    copy.verify_mode = context.verify_mode
    copy.check_hostname = context.check_hostname
    copy.set_ciphers(":".join(c["name"] for c in context.get_ciphers()))
    authorities = context.get_ca_certs(binary_form=True)
    if authorities:
        copy.load_verify_locations(cadata=b"".join(authorities))
    elif context.verify_mode != ssl.CERT_NONE:
        copy.load_default_certs()
    return copy
