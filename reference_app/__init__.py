"""MakrX reference backend: a FastAPI service that follows every backend convention."""
