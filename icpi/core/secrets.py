"""Keeping credentials out of everything the package writes: configs, logs, caches, records.

Two rules, applied wherever data is stored or logged:

- a mapping key that *is* a credential's name (:data:`SECRET_KEYS`, compared in lower case
  with ``-`` read as ``_``) is dropped — by exact name, so settings such as ``max_tokens``
  or ``judge_tokens`` are kept;
- a URL loses its user info (``user:password@``) and every query parameter whose name
  looks like a credential (:data:`SECRET_QUERY_MARKERS`), wherever it appears in a string.
"""

from __future__ import annotations

import logging
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


#: Command-line flags whose value is a credential.
SECRET_FLAGS = ("--api-key", "--password", "--token")


def redact_command(argv: list[str]) -> str:
    """A command line fit to store: credential flags masked, URLs cleaned.

    Args:
        argv: The arguments (``sys.argv``).

    Returns:
        The command as one string.
    """
    out: list[str] = []
    masked = False
    for arg in argv:
        if masked:
            out.append(REDACTED)
            masked = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            out.append(f"{flag}={REDACTED}" if eq else flag)
            masked = not eq
            continue
        out.append(redact_text(arg))
    return " ".join(out)


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


class RedactingFilter(logging.Filter):
    """A logging filter that cleans the URLs of every message (see :func:`redact_text`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean the record's message in place.

        Args:
            record: The record.

        Returns:
            Always True (the record is kept).
        """
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


#: Loggers of the HTTP stack that write request URLs (httpx logs them at INFO).
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai._base_client")


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the HTTP stack's loggers (idempotent)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
