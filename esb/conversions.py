"""Value conversions of mapping fields: exact decimals (decimal comma, SAP's trailing minus),
integers from zero-padded text, SAP material numbers, dates (`00000000` is none) and times with
zones, yes/no flags. Each takes a value and returns the converted value, or raises
`ConversionError(expected)`, whose text says what was expected.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo


class ConversionError(ValueError):
    """A value could not be converted; the message says what was expected."""


MAX_DIGITS = 28
"""Most digits a decimal may have written out in full (``1e-3``, ``0.001``, has 3). 28 is the
precision of Python's default decimal context, within which arithmetic and rounding stay exact;
`1e400`, a 4,000-digit integer or a 5,000-digit fraction is refused here, and each canonical
schema bounds its quantities and amounts far lower (SAP QUAN 13,3, CURR 15,2)."""

_DECIMAL = re.compile(r"^([+-]?)(\d+(?:[.,]\d*)?|[.,]\d+)([+-]?)$")


def to_decimal(value: Any, separator: str = "auto") -> Decimal:
    """An exact Decimal from a number or text: ``12.000``, ``12,5`` (decimal comma), ``13-``
    (SAP's trailing minus). ``separator``: "auto" (a lone comma is a decimal comma), "." or ","."""
    if isinstance(value, Decimal):
        return normalized(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return normalized(Decimal(value))
    if isinstance(value, float):
        return normalized(Decimal(repr(value)))
    if not isinstance(value, str):
        raise ConversionError("a decimal number")
    text = value.strip().replace(" ", "")
    match = _DECIMAL.match(text)
    if not match or (match[1] and match[3]):
        raise ConversionError("a decimal number")
    digits = match[2]
    if separator == "." and "," in digits or separator == "," and "." in digits:
        raise ConversionError(f'a decimal number with "{separator}" as the decimal separator')
    if len(digits) > 2 * MAX_DIGITS + 2:  # long text is refused before it becomes a number
        raise ConversionError(_TOO_MANY_DIGITS)
    sign = "-" if "-" in (match[1] + match[3]) else ""
    return normalized(Decimal(sign + digits.replace(",", ".")))


_TOO_MANY_DIGITS = f"a decimal number of at most {MAX_DIGITS} digits"


def normalized(number: Decimal) -> Decimal:
    """12.000 -> 12, 12.50 -> 12.5, without turning 1200 into 1.2E+3; ConversionError for a number
    that is not finite or has more than `MAX_DIGITS` digits written out."""
    if not number.is_finite():
        raise ConversionError("a finite decimal number")
    if not number:
        return Decimal(0)
    if _written_digits(number) > MAX_DIGITS:
        raise ConversionError(_TOO_MANY_DIGITS)
    try:
        if number == number.to_integral_value():
            return number.quantize(Decimal(1))
        return number.normalize()
    except InvalidOperation:  # not reached within MAX_DIGITS; a 422 all the same, never a 500
        raise ConversionError(_TOO_MANY_DIGITS) from None


def _written_digits(number: Decimal) -> int:
    """Digits of a non-zero finite number written out without an exponent, trailing zeros after
    the point or a zero before it (``120.50`` -> 4, ``0.001`` -> 3, ``1E-400`` -> 400); exact,
    unlike `Decimal.normalize`, which rounds to the context's precision first."""
    _, coefficient, exponent = number.as_tuple()
    significant = len(coefficient)
    while exponent < 0 and significant > 1 and coefficient[significant - 1] == 0:
        significant -= 1
        exponent += 1
    return max(significant + exponent, 0) + max(-exponent, 0)


def to_integer(value: Any) -> int:
    """An int from ``000010``, ``10.000``, ``13-``; a fraction is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = to_decimal(value)
    except ConversionError as error:
        bound = f" of at most {MAX_DIGITS} digits" if str(error) == _TOO_MANY_DIGITS else ""
        raise ConversionError(f"an integer{bound}") from None
    if number != number.to_integral_value():
        raise ConversionError("an integer (without a fraction)")
    return int(number)


def to_text(value: Any) -> str:
    """Text, trimmed; a Decimal is written without an exponent."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)
    raise ConversionError("a text value (not a list or an object)")


_DIGITS = re.compile(r"^[0-9]+$")


def strip_leading_zeros(text: str) -> str:
    """SAP's ALPHA output conversion: ``000000000000012345`` -> ``12345``; ``00A1`` stays."""
    return (text.lstrip("0") or "0") if _DIGITS.match(text) else text


def pad_with_zeros(text: str, width: int) -> str:
    """SAP's ALPHA input conversion: ``10`` -> ``000010`` for width 6; non-digits stay."""
    if not _DIGITS.match(text):
        return text
    if len(text) > width:
        raise ConversionError(f"at most {width} digits")
    return text.rjust(width, "0")


def _is_zero_date(text: str) -> bool:
    return not text.strip(" 0:-T.")


def to_date(value: Any, formats: tuple[str, ...] = (), zone: ZoneInfo | None = None) -> str | None:
    """``YYYY-MM-DD`` from ``20261130``, ``2026-11-30``, ``formats`` (strptime), or a time with
    an offset, whose date is taken in ``zone`` (the mapping's) when given: 2026-11-26T23:55Z is
    2026-11-27 in Asia/Shanghai. ``00000000`` and blank are no date (None)."""
    if isinstance(value, datetime):
        return _local_date(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    text = to_text(value)
    if _is_zero_date(text):
        return None
    for form in formats:
        try:
            return _local_date(datetime.strptime(text, form), zone)
        except ValueError:
            continue
    if not formats:
        try:
            if len(text) == 8 and text.isdigit():  # SAP's DATUM; faster than strptime
                return date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
            if len(text) == 10:
                return date.fromisoformat(text).isoformat()
            return _local_date(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
        except ValueError:
            pass
    raise ConversionError(f"a date ({' or '.join(formats) if formats else 'YYYYMMDD or YYYY-MM-DD'})")


def _local_date(moment: datetime, zone: ZoneInfo | None) -> str:
    if moment.tzinfo is not None and zone is not None:
        moment = moment.astimezone(zone)
    return moment.date().isoformat()


def to_datetime(value: Any, zone: ZoneInfo, formats: tuple[str, ...] = ()) -> str | None:
    """RFC 3339 with an offset. Text with an offset keeps it; a local time without one (SAP's
    ``20261124083000``, ``2026-11-24 08:30:00``, a date alone = midnight) is read in ``zone``.
    All zeros is no time (None)."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = to_text(value)
        if _is_zero_date(text):
            return None
        moment = _parse_datetime(text, formats)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")


def _parse_datetime(text: str, formats: tuple[str, ...]) -> datetime:
    for form in formats:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    if not formats:
        compact = text.replace(" ", "")
        if compact.isdigit() and len(compact) in _COMPACT_FORMATS:
            return datetime.strptime(compact, _COMPACT_FORMATS[len(compact)])
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            pass
    accepted = " or ".join(formats) if formats else "RFC 3339 or YYYYMMDDHHMMSS"
    raise ConversionError(f"a date and time ({accepted})")


_COMPACT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}  # SAP DATUM, DATUM+UZEIT
_TRUE = frozenset({"x", "true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off", ""})


def to_boolean(value: Any) -> bool:
    """True from ``X`` (SAP's flag), ``true``, ``yes``, ``1``; False from ``false``, ``no``, ``0``."""
    if isinstance(value, bool):
        return value
    text = to_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConversionError("a yes/no value (X, true, yes, 1 / false, no, 0)")
