"""The production loop for a website: tracker script, reference ASGI service, session stores, logs.

Optional extra: ``pip install 'nextchannel[web]'`` (Starlette, uvicorn, redis-py). Importing
:mod:`nextchannel` never imports this subpackage; the names below are loaded on first use.

Examples
--------
>>> from nextchannel.web import MemoryStore
>>> MemoryStore().idle_timeout_s
1800.0
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "SessionStore": "stores", "MemoryStore": "stores", "RedisStore": "stores", "store_from_url": "stores",
    "StoreError": "stores", "create_app": "app", "StaticContext": "app", "DecisionLog": "logs",
    "read_logs": "logs", "pseudonymise": "logs", "export_parquet": "logs", "OfferRenderer": "offers",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nextchannel.web' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nextchannel.web.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
