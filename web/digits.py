"""Digits as HTTP inputs mean them: ASCII 0-9 only.

``str.isdigit()`` is true for "²" and "١", and ``int("²")`` then raises: a query parameter or a
header like that would be a 500 instead of being ignored or refused.
"""

from __future__ import annotations


def ascii_digits(value: str) -> bool:
    """True when ``value`` is one or more of 0-9 and nothing else."""
    return value.isascii() and value.isdigit()
