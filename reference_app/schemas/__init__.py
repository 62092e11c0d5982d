"""Pydantic request and response models (the public API contract)."""
