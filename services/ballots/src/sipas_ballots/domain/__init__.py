"""Pure ballots domain: codes, issuance, validity, double entry, quality flags, back-checks. No I/O.

``codes`` makes and reads ballot codes, ``issuance`` follows each unit's ballot from issue to use or
cancellation, ``instrument`` and ``validation`` decide whether a submission counts (METHODOLOGY §2),
``double_entry`` reconciles two clerks' keyings of a paper ballot, ``quality`` flags suspicious but
valid ballots, ``backcheck`` draws and interprets call-backs (§6), ``online766`` reads per-dossier
ratings.
"""
