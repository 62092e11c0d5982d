"""Reusable security helpers and input sanitizers."""
