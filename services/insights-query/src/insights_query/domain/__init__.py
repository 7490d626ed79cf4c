"""Pure rules of the query side: projections, search normalization, windows, statistics."""
