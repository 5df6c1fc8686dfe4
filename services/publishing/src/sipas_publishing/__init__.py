"""SIPAS publishing service."""
