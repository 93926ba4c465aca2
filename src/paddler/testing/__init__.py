"""Helpers for testing Paddler itself on a machine without downloadable vision models."""
