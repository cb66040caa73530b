"""Secret values kept out of what the platform keeps or shows about a call.

A call's logs (stderr, and a component's stdout), its error message and so its invocation
record, error body, ``X-Stderr`` and async record are redacted: each secret's value becomes
``[redacted:NAME]``. A response body is the function's own answer and passes unchanged.
Values shorter than ``MIN_SECRET_CHARS`` are left alone: masking every "1" or "ab" in a log
would hide the log, not a secret.
"""

from __future__ import annotations

MIN_SECRET_CHARS = 4


class Redactor:
    """Replaces the values of one version's secrets."""

    def __init__(self, secrets: tuple[tuple[str, str], ...]) -> None:
        pairs = [(name, value) for name, value in secrets if len(value) >= MIN_SECRET_CHARS]
        # Longest first: a secret that contains another is masked whole.
        pairs.sort(key=lambda pair: len(pair[1]), reverse=True)
        self._bytes = [(v.encode(), f"[redacted:{n}]".encode()) for n, v in pairs]
        self._text = [(v, f"[redacted:{n}]") for n, v in pairs]

    def __bool__(self) -> bool:
        return bool(self._bytes)

    def data(self, data: bytes) -> bytes:
        for value, mask in self._bytes:
            data = data.replace(value, mask)
        return data

    def text(self, text: str) -> str:
        for value, mask in self._text:
            text = text.replace(value, mask)
        return text


# What a version without secrets redacts: nothing (one instance, not one per call).
NO_SECRETS = Redactor(())


def redactor(secrets: tuple[tuple[str, str], ...]) -> Redactor:
    return Redactor(secrets) if secrets else NO_SECRETS
