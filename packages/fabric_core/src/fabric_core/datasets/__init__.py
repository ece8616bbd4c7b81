"""Unified datasets: ``plan`` (what to read and how to shape it), ``transform`` (one batch
into the unified schema), ``storage`` (local folder or S3), ``build`` (versions, manifest,
jobs), ``preview``, ``service`` (dataset records for the API)."""
