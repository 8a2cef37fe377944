"""checkout-age batch jobs (PySpark) and the command-line entry point."""
