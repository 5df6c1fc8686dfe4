"""SIPAS sampling service."""
