"""Schemathesis hooks for tests/test_api_schema_fuzz.py: rules no schema can state.

Schemathesis treats every schema-valid ("positive") request as one the API must
accept. A few rules depend on state or on two parts of one request, which JSON
Schema cannot express; these hooks keep positive cases valid under them, and
leave negative cases alone. Each rule has its own test in the suite.
"""

import os
from typing import Any

import schemathesis

# Topics the fuzz test created, which group bodies may name (comma-separated).
KNOWN_TOPICS_ENV = "SCHEMA_FUZZ_TOPICS"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """Make a positive case obey the rules that the schema cannot state."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    if case.query and "cursor" in case.query:
        # An opaque token from a page's `next`/`previous` link; a made-up one
        # is a 400 (test_a_tampered_cursor_is_a_400_naming_the_cursor).
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    if case.path == "/api/tasks/" and case.method == "POST":
        _one_idempotency_key(case)
    if case.path.startswith("/api/groups/") and isinstance(case.body, dict):
        _known_topics(case.body)
    return case


def _one_idempotency_key(case: schemathesis.Case) -> None:
    """The header applies to one task, and must agree with the body's field
    (test_an_idempotency_header_on_a_list_is_refused and its neighbour)."""
    header = case.headers.get(IDEMPOTENCY_HEADER) if case.headers else None
    if header is None:
        return
    body = case.body
    if isinstance(body, list):
        del case.headers[IDEMPOTENCY_HEADER]
    elif isinstance(body, dict) and body.get("idempotency_key") is not None:
        case.headers[IDEMPOTENCY_HEADER] = body["idempotency_key"]


def _known_topics(body: dict[str, Any]) -> None:
    """A group names existing topics (test_create_group_over_missing_topics...)."""
    if isinstance(body.get("topics"), list):
        known = [name for name in os.environ[KNOWN_TOPICS_ENV].split(",") if name]
        body["topics"] = known[: len(body["topics"])]
