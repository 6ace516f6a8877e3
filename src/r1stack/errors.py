"""Errors that mean "the input is wrong": every layer raises them, the CLI turns them into exit code 2 with one
line, and the server into HTTP 400 (or the status they carry) with an OpenAI-style body."""

from __future__ import annotations


class UserError(Exception):
    """Bad input. The message says what is wrong and how to mend it."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFoundError(UserError):
    status_code = 404
    error_type = "not_found_error"
