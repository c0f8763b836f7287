"""Errors raised while decoding or validating records from outside.

SchemaError
 +-- DecodeError      bytes that are not a MarketDataMessage at all
 +-- ValidationError  a well-formed message whose content is unacceptable
"""

from __future__ import annotations


class SchemaError(Exception):
    """Root of the schema package's errors; ``reason`` is a short machine tag."""

    reason = "schema_error"


class DecodeError(SchemaError):
    reason = "decode_error"


class ValidationError(SchemaError):
    reason = "invalid"
