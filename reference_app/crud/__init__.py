"""Database operations, one module per model; routes never build queries themselves."""
