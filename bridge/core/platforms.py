"""The source platforms the core knows: their names and credit rules, nothing else.

The core never names a platform. Each adapter module (``adapters/``) declares its platform and
registers here what the core needs of it: the short name every output carries (``union``,
``ou``, ``vocational``) and the credit rule that values its passed courses (CONTRACT §4). The
registry is filled when the ``adapters`` package is imported; :func:`names` and :func:`rule_of`
import it on first use, so a caller of the core never sees an empty registry.

:data:`Platform` is the pydantic type of a platform name in every model: a string that must
name a registered platform, published in the JSON Schemas as an enum of the registered names.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

if TYPE_CHECKING:
    from bridge.core.credits import CreditFact

#: A credit rule: the credits a passed fact is worth and the rule's name (``hours/16``), given
#: the configured union hours per credit (CONTRACT §4.1, §4.2).
CreditRule = Callable[["CreditFact", float], tuple[float, str]]


@dataclass(frozen=True, slots=True)
class PlatformRules:
    """What the core needs of one platform."""

    name: str
    credit_rule: CreditRule


_REGISTERED: dict[str, PlatformRules] = {}
_LOCK = threading.Lock()
_loading = False


def register(rules: PlatformRules) -> None:
    """Make ``rules.name`` a known platform; registering one name twice with other rules is an error."""
    with _LOCK:
        known = _REGISTERED.get(rules.name)
        if known is not None and known != rules:
            raise ValueError(f"platform {rules.name!r} is registered twice with different rules")
        _REGISTERED[rules.name] = rules


def unregister(name: str) -> None:
    """Forget platform ``name`` (tests that register a platform of their own clean up with it)."""
    with _LOCK:
        _REGISTERED.pop(name, None)


def _ensure_loaded() -> None:
    global _loading
    if _REGISTERED or _loading:
        return
    _loading = True
    try:
        importlib.import_module("adapters")  # registers every platform as it is imported
    finally:
        _loading = False


def names() -> tuple[str, ...]:
    """The registered platform names, sorted."""
    _ensure_loaded()
    return tuple(sorted(_REGISTERED))


def rule_of(name: str) -> CreditRule:
    """The credit rule of platform ``name``; ``KeyError`` for an unknown platform."""
    _ensure_loaded()
    try:
        return _REGISTERED[name].credit_rule
    except KeyError:
        raise KeyError(f"unknown platform {name!r}; the registered platforms are {', '.join(names())}") from None


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered platform (cheap: called for every event)."""
    if name in _REGISTERED:
        return True
    _ensure_loaded()
    return name in _REGISTERED


def _known(value: str) -> str:
    if not is_known(value):
        raise ValueError(f"unknown platform; the registered platforms are {', '.join(names())}")
    return value


class _RegisteredNames:
    """JSON Schema of a platform name: an enum of the platforms registered when it is generated."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        result: dict[str, Any] = handler(schema)
        result["enum"] = list(names())
        result.setdefault("description", "A source platform, by the short name every output uses.")
        return result


#: A platform's short name, validated against the registry.
Platform = Annotated[str, AfterValidator(_known), _RegisteredNames()]
