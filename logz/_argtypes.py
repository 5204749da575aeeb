"""argparse value types shared by every room's subcommand: a bad value becomes a usage
error naming the value, never a traceback."""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type, lower: float, strict: bool):
    what = f"{'an integer' if kind is int else 'a finite number'} {'>' if strict else '>='} {lower:g}"
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < lower or (strict and value == lower):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, 1, strict=False)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, 0, strict=True)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, 0, strict=False)
