"""One module per source platform: raw Kafka message value in, :class:`CanonicalEvent` out.

Each module here whose name does not start with ``_`` is a platform: it declares
``ADAPTER = PlatformAdapter(...)`` (see :mod:`adapters._platform`) with its name, its topic (its
entry in ``topics/catalogue.py``), its parser, its credit rule and its simulator. Importing this
package imports every such module and registers it; so adding a platform is adding its module and
its catalogue entry, and nothing else.

Modules named in ``BRIDGE_PLATFORM_MODULES`` (comma-separated, importable) are registered too:
platforms that live outside this repository, whose ``ADAPTER`` brings its own topic.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable

from adapters._platform import (
    PlatformAdapter,
    by_name,
    by_topic,
    check_catalogue,
    describe,
    register,
    registered,
    unregister,
)
from bridge.core.events import CanonicalEvent
from bridge.errors import ConfigurationError

#: The setting that names external platform modules (also declared in :mod:`bridge.settings`).
MODULES_VARIABLE = "BRIDGE_PLATFORM_MODULES"


def load_module(name: str) -> PlatformAdapter:
    """Import platform module ``name`` and register its ``ADAPTER``."""
    module = importlib.import_module(name)
    adapter = getattr(module, "ADAPTER", None)
    if not isinstance(adapter, PlatformAdapter):
        raise RuntimeError(f"platform module {name} declares no ADAPTER = PlatformAdapter(...)")
    return register(adapter)


def _load() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            load_module(f"{__name__}.{info.name}")
    for name in filter(None, (part.strip() for part in os.environ.get(MODULES_VARIABLE, "").split(","))):
        try:
            load_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"{MODULES_VARIABLE} names module {name}, which cannot be imported ({exc}): install it or "
                "correct the setting (every worker and command of a deployment must name the same modules)"
            ) from exc
    check_catalogue()


_load()


def parsers() -> dict[str, Callable[[bytes], CanonicalEvent]]:
    """Each platform topic's parser, for the pipeline to route input by topic."""
    return {a.topic.name: a.parse for a in registered()}


__all__ = [
    "MODULES_VARIABLE",
    "PlatformAdapter",
    "by_name",
    "by_topic",
    "describe",
    "load_module",
    "parsers",
    "register",
    "registered",
    "unregister",
]
