"""Validators and sanitizers for untrusted input: headers, addresses and free text."""

import ipaddress
import re

# Printable text with at least one non-space character (no C0 controls or DEL).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
# Multi-line text: like NAME_PATTERN but tabs and line breaks are allowed, and it may be blank.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def safe_request_id(value: str | None) -> str | None:
    """The inbound request id when it is safe to echo in headers and logs, else None."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return None


def normalize_ip(value: str) -> str | None:
    """The canonical form of an IPv4/IPv6 address, or None when `value` is not one."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def sanitize_name(value: str) -> str:
    """Collapse runs of whitespace to one space and trim, so look-alike names compare equal."""
    return " ".join(value.split())
