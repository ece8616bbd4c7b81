"""Source kinds: one module per kind, each exporting ``CONNECTOR``, an instance of
:class:`fabric_core.connectors.contract.Connector` (settings, check, harvest, read batches,
value lookup, logical types). Adding a kind means adding one module and one line below.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from fabric_core.errors import InvalidInputError

if TYPE_CHECKING:
    from fabric_core.connectors.contract import Connector

CONNECTOR_MODULES = {
    "postgresql": "fabric_core.connectors.postgresql",
    "mysql": "fabric_core.connectors.mysql",
    "sqlite": "fabric_core.connectors.sqlite",
    "s3": "fabric_core.connectors.s3",
}
CONNECTION_KINDS = tuple(CONNECTOR_MODULES)


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
