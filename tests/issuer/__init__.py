"""Unit tests of the mock identity provider (harness.issuer)."""
