"""The MakrX contract suite: one module per area of the conventions."""
