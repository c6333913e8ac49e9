"""Reading resource properties the way they really arrive.

At run time ``args.props`` is the SDK's unknown-checking proxy: mappings and sequences are
``collections.abc`` types, not ``dict``/``list``; numbers are floats; some booleans arrive as
the strings ``"true"``/``"false"``; keys may be missing; and reading a value that is unknown
during preview raises ``UnknownValueError`` (the SDK turns that into an advisory "can't run
policy during preview"). These helpers accept all of that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError


def as_bool(value: Any) -> bool | None:
    """True/False for booleans and their string forms; None when missing or unrecognised."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_int(value: Any) -> int | None:
    """An integer from an int, an integral float or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def as_list(value: Any) -> list[Any]:
    """The items of a sequence (not a string); [] for None or anything else."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def as_map(value: Any) -> Mapping[str, Any]:
    """A mapping, or an empty one for None or anything else."""
    return value if isinstance(value, Mapping) else {}


def first(value: Any) -> Mapping[str, Any]:
    """The first element of a list of blocks (Terraform's single nested blocks arrive as lists or maps)."""
    if isinstance(value, Mapping):
        return value
    items = as_list(value)
    return items[0] if items and isinstance(items[0], Mapping) else {}


def plain_items(value: Any) -> dict[str, Any]:
    """A mapping's entries as a new dict, for a remediation to amend and return.

    Reading a proxied mapping entry by entry would raise on any value unknown during preview,
    even one the remediation does not touch; the SDK's proxy keeps the raw mapping under the
    ``"__target"`` key, and unknowns in it flow back to the engine unchanged.
    """
    if not isinstance(value, Mapping):
        return {}
    try:
        target = value["__target"]
    except KeyError:
        target = value
    return dict(target)


# --------------------------------------------------------------------------------------
# Values a first preview does not know yet
# --------------------------------------------------------------------------------------

class _Unknown:
    """The type of :data:`UNKNOWN`."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        # An unknown value is one the program sets from another resource's output: it is set.
        return True


UNKNOWN: Any = _Unknown()
"""What :func:`known` returns for a value the engine sent as unknown (a first preview does not
know ids, ARNs or generated values of resources that do not exist yet). Truthy, because such a
value is always being set by the program."""


def known(props: Mapping[str, Any], key: str | int) -> Any:
    """``props[key]`` (None when missing), or :data:`UNKNOWN` instead of raising
    ``UnknownValueError`` when the engine sent the value as unknown."""
    try:
        return props[key]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return None
    except UnknownValueError:
        return UNKNOWN


def known_items(value: Any) -> list[Any]:
    """The items of a sequence, each one :data:`UNKNOWN` where the engine sent it as unknown;
    ``[UNKNOWN]`` for a list that is unknown as a whole, [] for anything that is not a list."""
    if value is UNKNOWN:
        return [UNKNOWN]
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [known(value, index) for index in range(len(value))]


def keys(props: Any) -> set[str]:
    """The keys a mapping sets, without reading (and so without raising on) unknown values."""
    return {str(key) for key in props} if isinstance(props, Mapping) else set()
