"""The SIPAS event backbone."""
