"""Drift that knows its impact: what a sync's catalog change (or a new source value) means to
the column mappings, value mappings and dataset definitions built on it."""
