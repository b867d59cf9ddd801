"""`POST /api/auth/token/`: trade a username and password for the API token."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from tasks_app.api.views.docs import BAD_REQUEST, LOCKED_OUT
from tasks_app.lockout import lockout_error
from tasks_app.services.users import token_sign_in

WRONG_CREDENTIALS = (
    "Unable to sign in with that username and password. Failed attempts count "
    "towards a lockout (LOGIN_FAILURE_LIMIT)."
)
TOKEN_ANSWER = inline_serializer("Token", {"token": serializers.CharField()})


class TokenRequestSerializer(AuthTokenSerializer):
    """A username and a password (DRF's serializer, without its output field)."""

    username = serializers.CharField(write_only=True, trim_whitespace=False)
    token = None  # type: ignore[assignment]  # DRF drops a field declared None


def _credentials_refused(errors: dict) -> bool:
    """Tell whether the password check failed (not a missing or blank field)."""
    return any(
        getattr(error, "code", None) == "authorization"
        for error in errors.get("non_field_errors", [])
    )


@extend_schema(tags=["auth"])
class TokenView(GenericAPIView):
    """Sign in with a password to get your API token (the same one each time).

    Failed attempts count towards the sign-in lockout, as on the login pages.
    """

    serializer_class = TokenRequestSerializer
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_token_create",
        responses={
            200: TOKEN_ANSWER,
            400: BAD_REQUEST,
            401: OpenApiResponse(
                BAD_REQUEST.response, description="Wrong username or password."
            ),
            429: LOCKED_OUT,
        },
    )
    def post(self, request: Request) -> Response:
        """Answer `{"token": ...}` for a valid username and password."""
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # Axes marks the request when this attempt hit (or met) the lockout.
            if getattr(request, "axes_locked_out", False):
                raise lockout_error()
            errors = dict(serializer.errors)
            if _credentials_refused(errors):
                raise AuthenticationFailed(WRONG_CREDENTIALS)
            raise serializers.ValidationError(errors)
        user = serializer.validated_data["user"]
        return Response({"token": token_sign_in(user=user, request=request)})
