"""One module per command family; each handler registers itself in session.DISPATCH."""
