"""Fabric's web layer, shared by the gateway and the services."""
