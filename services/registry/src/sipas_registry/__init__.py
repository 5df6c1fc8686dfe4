"""SIPAS registry service."""
