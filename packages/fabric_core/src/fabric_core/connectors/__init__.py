"""Source kinds: one module per kind, each exporting ``CONNECTOR``, an instance of
:class:`fabric_core.connectors.contract.Connector` (settings, check, harvest, read batches,
value lookup, logical types). Adding a kind means adding one module and one line in
``fabric_core.source_kinds``.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from fabric_core.errors import InvalidInputError
from fabric_core.source_kinds import CONNECTION_KINDS, CONNECTOR_MODULES

if TYPE_CHECKING:
    from fabric_core.connectors.contract import Connector

__all__ = ["CONNECTION_KINDS", "get_connector"]


def get_connector(kind: str) -> Connector:
    """The connector of a source kind."""
    if kind not in CONNECTOR_MODULES:
        raise InvalidInputError(
            f"Unknown connection kind {kind!r}; use one of {', '.join(CONNECTION_KINDS)}."
        )
    return _load(kind)


@cache
def _load(kind: str) -> Connector:
    # Imported on first use: a kind's drivers load only in processes that reach that kind.
    return importlib.import_module(CONNECTOR_MODULES[kind]).CONNECTOR
