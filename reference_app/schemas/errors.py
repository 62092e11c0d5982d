"""The error body every failing request returns (documented as each operation's default)."""

from pydantic import BaseModel


class ValidationIssue(BaseModel):
    """One problem with the request: where (`loc`) and why, never the offending value."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorDetail(BaseModel):
    """Machine-readable code, human message, and the request id echoed in `X-Request-ID`."""

    code: str
    message: str
    request_id: str
    details: list[ValidationIssue] | None = None


class ErrorResponse(BaseModel):
    """Body of every error response (see middleware/error_handling.py)."""

    error: ErrorDetail
