"""The registered source kinds: kind -> the module that implements it (its ``CONNECTOR``).

Adding a kind means adding its module under ``fabric_core.connectors`` and one line here. A
leaf module, so the API schemas can name the kinds without importing any connector.
"""

CONNECTOR_MODULES = {
    "postgresql": "fabric_core.connectors.postgresql",
    "mysql": "fabric_core.connectors.mysql",
    "sqlite": "fabric_core.connectors.sqlite",
    "s3": "fabric_core.connectors.s3",
}
CONNECTION_KINDS = tuple(CONNECTOR_MODULES)
