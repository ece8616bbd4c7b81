"""Fabric service."""
