"""The `Prefer` request header (RFC 7240): `return=minimal` asks for a lean answer."""

from django.utils.cache import patch_vary_headers
from rest_framework.request import Request
from rest_framework.response import Response

RETURN_MINIMAL = "return=minimal"


def prefers_minimal(request: Request) -> bool:
    """Whether the client asked for `return=minimal` among its preferences."""
    preferences = request.headers.get("Prefer", "").split(",")
    return any(
        p.split(";")[0].strip().replace('"', "").lower() == RETURN_MINIMAL
        for p in preferences
    )


def preference_answered(response: Response, *, minimal: bool) -> Response:
    """Say that the answer depends on `Prefer`, and which preference it applied."""
    patch_vary_headers(response, ["Prefer"])
    if minimal:
        response["Preference-Applied"] = RETURN_MINIMAL
    return response
