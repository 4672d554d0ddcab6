"""IREE's generated test suites as they come: test folders and their CI configurations."""
