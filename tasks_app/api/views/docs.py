"""Shared schema annotations for error answers."""

from drf_spectacular.utils import OpenApiResponse

from tasks_app.api.serializers import ErrorSerializer

BAD_REQUEST = OpenApiResponse(ErrorSerializer, description="Invalid input; see detail.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object.")
CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The object's state forbids this operation."
)
LOCKED_OUT = OpenApiResponse(
    ErrorSerializer,
    description="Too many failed sign-ins for this username from this address; "
    "Retry-After says when to try again.",
)
