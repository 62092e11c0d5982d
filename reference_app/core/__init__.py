"""Cross-cutting runtime configuration: settings and logging."""
