"""One module per source kind, each with the same functions:

``DEFAULT_PORT``, ``build_url(spec)``, ``connect_args(spec, timeout)``,
``classify_error(exc)``, ``server_version(connection)``,
``harvest_catalog(connection, spec, schema_filter)`` and
``read_batches(spec, schema, table, columns, *, text_columns, limit, batch_rows, timeout)``
(Arrow record batches from the fastest reader measured for that kind, see
docs/benchmarks.md).
Adding a kind means adding one module and naming it in ``CONNECTOR_MODULES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fabric_core.errors import InvalidInputError

CONNECTOR_MODULES = {
    "postgresql": "fabric_core.connectors.postgresql",
    "mysql": "fabric_core.connectors.mysql",
    "sqlite": "fabric_core.connectors.sqlite",
}
CONNECTION_KINDS = tuple(CONNECTOR_MODULES)


def get_connector(kind: str) -> ModuleType:
    """The connector module of a source kind."""
    try:
        return importlib.import_module(CONNECTOR_MODULES[kind])
    except KeyError:
        raise InvalidInputError(
            f"Unknown connection kind {kind!r}; use one of {', '.join(CONNECTION_KINDS)}."
        ) from None
