"""The ``sipas`` command: run the platform locally, and operate it."""
