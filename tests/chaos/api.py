"""A small HTTP client for the API under test that tallies every answer it gets.

Standard library only (http.client): the harness needs one keep-alive
connection per thread, JSON in and out, and nothing a dependency would add.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 15.0
NO_ANSWER = "no answer"
# How many unexpected 5xx answers are kept verbatim, for the diagnosis.
SAMPLES_KEPT = 5


@dataclass
class Answers:
    """Every answer of a run, by kind, shared by the harness's threads.

    Kinds: the status code ("201"), "503 <service>" for a 503 that names the
    service that failed, and "no answer" when the connection failed or timed out.
    """

    kinds: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, sample: str = "") -> None:
        """Count one answer; keep a few samples of the unexpected ones."""
        with self._lock:
            self.kinds[kind] += 1
            if sample and len(self.unexpected) < SAMPLES_KEPT:
                self.unexpected.append(sample)

    @property
    def bad_5xx(self) -> int:
        """Count 5xx answers other than a 503 that names its service."""
        return sum(n for kind, n in self.kinds.items() if _is_bad_5xx(kind))


def _is_bad_5xx(kind: str) -> bool:
    code = kind.split(" ", 1)[0]
    return code.isdigit() and code.startswith("5") and kind == code


def classify(status: int, body: Any) -> str:
    """Name an answer's kind; a 503 counts as named only with a `service` field."""
    if status == 503 and isinstance(body, dict) and body.get("service"):
        return f"503 {body['service']}"
    return str(status)


class ApiClient:
    """Talk JSON to the API with a token; one instance per thread."""

    def __init__(self, base_url: str, token: str, answers: Answers) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.answers = answers
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, Any] | None:
        """Send one request; return (status, decoded body), or None if no answer."""
        payload = None if body is None else json.dumps(body)
        try:
            conn = self._connection()
            conn.request(method, path, body=payload, headers=self.headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):  # refused, reset, timed out
            self.close()
            self.answers.add(NO_ANSWER)
            return None
        decoded = _decode(raw)
        kind = classify(response.status, decoded)
        sample = f"{method} {path} -> {response.status}: {raw[:300]!r}"
        self.answers.add(kind, sample if _is_bad_5xx(kind) else "")
        return response.status, decoded

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=REQUEST_TIMEOUT_S
            )
        return self._conn


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
