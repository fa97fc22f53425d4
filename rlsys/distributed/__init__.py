"""Everything that knows about Ray or process groups: actor wrapping, cluster start, weight sync."""
