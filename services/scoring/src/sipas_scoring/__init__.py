"""SIPAS scoring service."""
