"""Every gradient in ember lives in this package, next to its forward (one op, one class)."""
