"""Scoring's pure domain: exact scoring arithmetic, survey estimates, suppression and rankings.

No I/O and no framework imports. Modules: ``scheme`` (inputs), ``rounding`` (presentation),
``shares`` / ``points`` / ``online766`` (the built-in schemes), ``weights`` / ``survey`` /
``weighted_shares`` / ``intervals`` (estimates and their uncertainty), ``suppression``, ``ranking``.
"""
