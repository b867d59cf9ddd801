"""Request parsers whose errors say what is wrong with the body and where."""

import codecs
import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


class JSONBodyParser(JSONParser):
    """Parse JSON, naming the line and column of a syntax error.

    DRF's message ("JSON parse error - ...") leaves a caller guessing whether the
    problem is the body or one field; this one says it is the body and where.
    """

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"The request body is not valid {encoding} text (byte {exc.start}); "
                "send UTF-8 encoded JSON."
            ) from exc
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno} (character {exc.pos})."
            ) from exc
        except ValueError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ParseError(
                "The request body nests JSON too deeply to parse; flatten it."
            ) from exc


def _reject_constant(name: str) -> None:
    """Refuse NaN and Infinity, which are not JSON and which PostgreSQL rejects."""
    raise ValueError(f"{name} is not a JSON value; send a number or a string.")


# Browsable-API forms still post form data; API clients send JSON.
API_PARSERS = [JSONBodyParser, FormParser, MultiPartParser]
