"""Keeping credentials out of everything the package writes: configs, logs, caches, records.

Two rules, applied wherever data is stored or logged:

- a mapping key that *is* a credential's name (:data:`SECRET_KEYS`, compared in lower case
  with ``-`` read as ``_``) is dropped — by exact name, so settings such as ``max_tokens``
  or ``judge_tokens`` are kept;
- a URL loses its user info (``user:password@``) and every query parameter whose name
  looks like a credential (:data:`SECRET_QUERY_MARKERS`), wherever it appears in a string.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

#: Keys whose values are credentials (exact names, normalised).
SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "openai_api_key",
        "authorization",
        "proxy_authorization",
        "auth",
        "auth_token",
        "access_token",
        "refresh_token",
        "bearer_token",
        "token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "x_api_key",
        "cookie",
        "set_cookie",
    }
)
#: Query parameters dropped from stored URLs (substrings of the lower-cased name).
SECRET_QUERY_MARKERS = ("key", "token", "secret", "password", "passwd", "sig", "auth", "code")
#: Placeholder of a removed credential.
REDACTED = "REDACTED"

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential.

    Args:
        key: The key.

    Returns:
        True for the names in :data:`SECRET_KEYS` (case- and ``-``/``_``-insensitive).
    """
    return str(key).strip().lower().replace("-", "_") in SECRET_KEYS


def redact_url(url: str) -> str:
    """A URL without user info and without credential-like query parameters.

    Args:
        url: The URL.

    Returns:
        E.g. ``http://host:8000/v1`` for ``http://user:pw@host:8000/v1?api_key=x&n=1`` →
        ``http://host:8000/v1?n=1``.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if not any(m in k.lower() for m in SECRET_QUERY_MARKERS)
        ]
        return urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query), parts.fragment)
        )
    except ValueError:
        return REDACTED


def redact_text(text: str) -> str:
    """A text with every URL in it passed through :func:`redact_url`.

    Args:
        text: Any text (a log message, an error).

    Returns:
        The text, URLs cleaned.
    """
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def redact(data: Any) -> Any:
    """Drop credential keys and clean URLs in nested JSON-like data.

    Args:
        data: Mappings, lists, tuples, strings and scalars.

    Returns:
        A copy without :data:`SECRET_KEYS` and with every URL cleaned.
    """
    if isinstance(data, Mapping):
        return {str(k): redact(v) for k, v in data.items() if not is_secret_key(k)}
    if isinstance(data, list | tuple):
        return [redact(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data
