"""Pure sampling domain: frames, sizes, allocation, the verifiable draw, weights. No I/O.

``frame`` and ``phone`` validate rows, ``digest`` pins a frame, ``size`` and ``allocation`` make a
plan, ``prng`` and ``draw`` carry it out reproducibly, ``resident`` draws the multi-stage design,
``listing`` checks its stage files' rows, ``replacement`` and ``weights`` follow the sample through fieldwork.
"""
