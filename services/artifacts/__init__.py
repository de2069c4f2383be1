"""artifacts domain."""
