"""Fabric's domain: everything that is true without HTTP or Airflow."""

__version__ = "0.1.0"
