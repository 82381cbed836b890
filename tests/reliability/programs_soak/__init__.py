"""Helper programs of the soak and fuzz tests (run as children of the cores)."""
