"""Conformant backends shaped like the real MakrX ones rather than like the reference app: each TOML file
patches the reference app (the format of tests/variants) and must pass every contract, none skipped."""
