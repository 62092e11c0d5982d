"""Repository-level pytest setup: the project's own tests drive pytest itself through `pytester`."""

pytest_plugins = ["pytester"]
