"""Formats and facts every layer uses: errors, the one YAML loader and value types, which way a metric improves,
the sweep plan, the owners of sweep, run and feature dirs, and Ctrl-C/SIGTERM as a stop. Imports no torch."""
