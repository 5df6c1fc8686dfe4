"""SIPAS ballots service."""
