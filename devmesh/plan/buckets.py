"""Sticky buckets: which of 100 buckets a header's value falls in, as a regular expression that
Istio, Envoy and Python evaluate alike (the sticky canary's rules, see devmesh.plan.strategy).

Istio cannot make a weighted route sticky (istio/istio#9764: a consistent-hash load balancer
picks a pod *within* a subset, never the subset). So the bucket of a request is computed from
the header's value by a regular expression, which Istio (``headers: {h: {regex: …}}``) and
Envoy (``safe_regex``) both evaluate the same way, and which ``first_match`` evaluates in
Python for ``routes --explain``:

* every character counts as a digit: ``(code point − 48) mod 10`` for printable ASCII, so
  ``'0'``–``'9'`` count as themselves; any other character counts as 0;
* the last two characters of the value give two digits ``x`` (second to last; 0 when the
  value is shorter) and ``y`` (last);
* the bucket is ``10·rank(x) + rank(y)`` where ``rank`` is the digit's position in
  ``DIGIT_ORDER`` (0, 5, 1, 6, 2, 7, 3, 8, 4, 9);
* a request is in the canary when its bucket is below the weight.

Raising the weight only adds buckets, so nobody moves back to the baseline while a canary
grows. The order interleaves digits so that alphabets whose characters do not fall evenly on
ten digits stay close to the weight: decimal ids split exactly, hex ids (UUIDs) and random
alphanumeric tokens within a few points (figures in docs/strategies.md). Values whose ending
never varies (e-mail addresses) all land in one bucket: use another header.
"""

from __future__ import annotations

from functools import cache

BUCKETS = 100
DIGIT_ORDER = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
_RANK = {digit: rank for rank, digit in enumerate(DIGIT_ORDER)}
_PRINTABLE = range(0x20, 0x7F)


def char_digit(char: str) -> int:
    """The digit a character counts as: ``(code point − 48) mod 10``; 0 outside printable ASCII."""
    code = ord(char)
    return (code - 48) % 10 if code in _PRINTABLE else 0


def bucket_of(value: str) -> int:
    """The sticky bucket (0–99) of a header value, as the rendered regexes compute it."""
    last = _RANK[char_digit(value[-1])] if value else 0
    prev = _RANK[char_digit(value[-2])] if len(value) >= 2 else 0
    return 10 * prev + last


def _char_class(digits: frozenset[int]) -> str:
    """A regex matching one character whose digit is in ``digits``."""
    chars = [c for c in _PRINTABLE if (c - 48) % 10 in digits]
    ranges: list[tuple[int, int]] = []
    for c in chars:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    body = "".join(f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in ranges)
    cls = f"[{body}]"
    # Characters outside printable ASCII count as 0.
    return f"(?:{cls}|[^\\x20-\\x7e])" if 0 in digits else cls


@cache
def bucket_regex(weight: int) -> str:
    """A regex (RE2 and Python alike, whole-value match) for values in buckets below ``weight``."""
    if not 0 < weight <= BUCKETS:
        raise ValueError(f"a sticky weight must be 1–{BUCKETS}, got {weight}")
    if weight == BUCKETS:
        return ".*"
    tens, ones = divmod(weight, 10)
    alternatives = []
    if tens:
        # The second-to-last character's rank is below ``tens``: any last character. A value of
        # one character has a second-to-last digit of 0, whose rank (0) is below ``tens``.
        full = frozenset(DIGIT_ORDER[:tens])
        alternatives.append(f"(?:.*{_char_class(full)})?.")
    if ones:
        partial = DIGIT_ORDER[tens]
        last = _char_class(frozenset(DIGIT_ORDER[:ones]))
        prefix = _char_class(frozenset({partial}))
        alternatives.append(f"(?:.*{prefix})?{last}" if partial == 0 else f".*{prefix}{last}")
    # The empty value is in bucket 0, which every weight above 0 includes.
    return f"(?:{'|'.join(alternatives)})?"


def describe_bucket_regex(header: str, pattern: str) -> str | None:
    """``x-user-id in sticky buckets 0–19`` for a regex ``bucket_regex`` made, else None."""
    for weight in range(1, BUCKETS):
        if bucket_regex(weight) == pattern:
            return f"{header} in sticky buckets 0–{weight - 1} of {BUCKETS}"
    return f"{header} present" if pattern == ".*" else None
