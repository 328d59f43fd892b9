"""Manifests: building, auditing and showing what a run produced."""
