"""Clients of the services this backend depends on: Keycloak, and the readiness probes."""
