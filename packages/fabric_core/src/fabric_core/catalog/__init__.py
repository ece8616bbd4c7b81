"""The metadata catalog: ``harvest`` (what connectors return), ``sync`` (diff and persist),
``browse`` (reading it back for the API)."""
