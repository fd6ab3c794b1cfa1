"""botocore failures as the one-line errors Heimdall reports (endpoint, credentials, request)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from heimdall.errors import ConfigError

__all__ = ["MISSING_ERRORS", "error_code", "translate_errors"]

_CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
MISSING_ERRORS = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})


def error_code(exc: ClientError) -> str:
    """The S3 error code of a botocore `ClientError` ("NoSuchKey", "403", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def translate_errors(where: str, bucket: str | None = None) -> Iterator[None]:
    """Turn botocore failures into one-line `ConfigError`s naming `where` (the endpoint) and
    `bucket`; a `ClientError` for a missing object or bucket passes through unchanged."""
    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        raise ConfigError(f"cannot reach S3 endpoint {where}: {exc}") from None
    except NoCredentialsError as exc:
        raise ConfigError(f"S3 credentials missing for {where}: {exc}") from None
    except ClientError as exc:
        code = error_code(exc)
        if code in _CREDENTIAL_ERRORS:
            # On AWS a 403 also means the bucket name is taken by another account.
            hint = f" (bucket {bucket}: wrong keys, no access, or owned by another account)" if bucket else ""
            raise ConfigError(f"S3 credentials rejected by {where}: {code}{hint}") from None
        if code in MISSING_ERRORS:
            raise
        message = exc.response.get("Error", {}).get("Message") or code
        raise ConfigError(f"S3 request to {where} failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise ConfigError(f"S3 request to {where} failed: {exc}") from None
