"""A measured state kept through refreshes (ballots appended where they come, voided ones removed) answers
every question the figures ask exactly as one built from scratch over the same ballots: each agency's rows
in ballot-id order, the strata and weight groups numbered as first met in id order, the strata digests and
groups, the pools, and each (agency, weight group) cell's moments and counts of who answered."""

from __future__ import annotations

import hashlib
import random
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_cli.registry_client import builtin_definition
from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_scoring.application.definitions import CampaignBasis, instrument_of, labels_of, scheme_of
from sipas_scoring.application.measured import Batch, Measured, measurable_codes
from sipas_scoring.domain.codes import Codebook

INSTRUMENT = InstrumentDefinition.model_validate(builtin_definition("instrument", "sipas-2017"))
SCHEME = SchemeDefinition.model_validate(builtin_definition("scheme", "share-satisfied"))
BASIS = CampaignBasis("c-m", 2026, "national", None, ("sipas-2017", 1), ("share-satisfied", 1),
                      instrument_of(INSTRUMENT), scheme_of(SCHEME), labels_of(INSTRUMENT))
BOOK = Codebook.of(BASIS.instrument)
AGENCIES = ["a1", "a2", "a3", "a4"]
DESIGNS = [("S1", Fraction(10)), ("S1", Fraction(12)), ("S2", Fraction(25)), (None, None), ("S3", Fraction(40, 3))]


def batch_of(ids: list[int], seed: int) -> Batch:
    codes, agencies, provinces, strata, weights = [], [], [], [], []
    for i in ids:
        rng = random.Random(seed * 1000 + i)  # a ballot's answers are its own, whichever batch brings it
        answers = {item: None if rng.random() < 0.2 else rng.choice((1, 2, 3, 4, 5)) for item in BOOK.items}
        if rng.random() < 0.1:
            answers = dict.fromkeys(BOOK.items)  # answered nothing
        codes.append(measurable_codes(BOOK, answers))
        agencies.append(AGENCIES[i % len(AGENCIES)])
        provinces.append("01" if i % 3 else "79")
        stratum, weight = DESIGNS[(i * 7 + seed) % len(DESIGNS)]
        strata.append(None if stratum is None else f"d|{stratum}")
        weights.append(weight)
    return Batch([f"b{i:04d}" for i in ids], b"".join(codes), agencies, provinces, strata, weights)


def view(m: Measured) -> dict:
    """What the figures read, by names and ids rather than by rows or stable codes."""
    ids = {row: m.ids[at] for at, row in enumerate(m.order.tolist())}
    cells = {}
    columns = m.answering([np.array([k % 3 == 0 for k in range(m.width)]), np.ones(m.width, dtype=bool)])
    for cell in np.flatnonzero(m.cell_rows > 0).tolist():
        key = (m._agencies[m.cell_agency[cell]], int(m.cell_group_at[cell]))
        cells[key] = (int(m.cell_rows[cell]), m.cell_sums[cell].tolist(), m.cell_cross[cell].tolist(),
                      m.cell_given[cell].tolist(), m.cell_hits[cell, columns].tolist())
    return {
        "ids": m.ids.tolist(),
        "agency_rows": {a: [ids[r] for r in rows.tolist()] for a, rows in m.agency_rows.items()},
        "stratum": {ids[r]: int(s) for r, s in enumerate(m.stratum.tolist())},
        "group": {ids[r]: int(g) for r, g in enumerate(m.group.tolist())},
        "groups": list(zip(m.group_weight, m.group_stratum, strict=True)),
        "strata_groups": m.strata_groups, "strata_seen": m.strata_seen, "pool": m.pool, "cells": cells,
        "agency_strata": m.agency_strata,
        "rows": {ids[r]: (m.y[r].tolist(), m.x[r].tolist(), bytes(m.row_digests[r])) for r in range(len(m))},
    }


def digests(m: Measured) -> dict[tuple[str, str], tuple[bytes, frozenset[str]]]:
    """Each stratum's (by label) and agency's digest, with the ballots it stands for."""
    ids = {row: str(m.ids[at]) for at, row in enumerate(m.order.tolist())}
    labels = {int(m.stratum[r]): m._labels[m.label_codes[r]] for r in range(len(m))}
    out = {}
    for s, digest in enumerate(m.strata_digests):
        out[("stratum", labels[s])] = (digest, frozenset(ids[r] for r in range(len(m)) if m.stratum[r] == s))
    for agency, rows in m.agency_rows.items():
        out[("agency", agency)] = (m.agency_digests[agency], frozenset(ids[r] for r in rows.tolist()))
    return out


def check_against_rows(m: Measured, built: bool = False) -> None:
    """The per-stratum and per-agency answers against the rows themselves, taken in id order; a state built
    from scratch digests each one's rows in that order."""
    in_order = m.order.tolist()
    for s, groups in enumerate(m.strata_groups):
        rows = [r for r in in_order if m.stratum[r] == s]
        assert groups == {int(m.group[r]) for r in rows if m.group[r] >= 0}
        if built:
            assert m.strata_digests[s] == hashlib.sha256(m.row_digests[rows].tobytes()).digest()
    agencies = {m._agencies[code] for code in m.agency_codes.tolist()}
    assert {a: rows.tolist() for a, rows in m.agency_rows.items()} == {
        a: [r for r in in_order if m._agencies[m.agency_codes[r]] == a] for a in agencies}
    for agency, rows in m.agency_rows.items():
        if built:
            assert m.agency_digests[agency] == hashlib.sha256(m.row_digests[rows].tobytes()).digest()
        assert m.agency_strata[agency] == sorted({int(m.stratum[r]) for r in rows.tolist()})
    assert m.agency_digests.keys() == m.agency_strata.keys() == m.agency_rows.keys()
    firsts = [next(r for r in in_order if m.stratum[r] == s) for s in range(len(m.strata_digests))]
    assert firsts == sorted(firsts, key=in_order.index)  # strata numbered as first met in id order


steps = st.lists(st.tuples(st.lists(st.integers(0, 80), max_size=25), st.lists(st.integers(0, 80), max_size=8)),
                 min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 80), max_size=30), steps, st.integers(0, 3))
def test_a_kept_state_answers_as_one_built_from_scratch(start, changes, seed):
    kept = Measured.build(BASIS, batch_of(sorted(set(start)), seed))
    check_against_rows(kept, built=True)
    counted = set(start)
    seen: dict[tuple[str, str], set[tuple[bytes, frozenset[str]]]] = {}
    for added, removed in changes:
        removed = [i for i in removed if i not in added]  # the caller never sends one ballot both ways
        before = digests(kept)
        kept.apply(batch_of(added, seed), [f"b{i:04d}" for i in removed])
        counted = (counted | set(added)) - set(removed)
        scratch = Measured.build(BASIS, batch_of(sorted(counted), seed))
        assert view(kept) == view(scratch)
        check_against_rows(kept)
        assert len(kept) == len(counted)
        # A digest is kept while its ballots stay, and made anew when they change: never one standing for
        # other ballots than it did (a unit's memo would be used for rows it was not made of).
        after = digests(kept)
        for key, (digest, ballots) in after.items():
            if key in before and before[key][1] == ballots:
                assert digest == before[key][0]
            for earlier in seen.get(key, ()):
                assert earlier[0] != digest or earlier[1] == ballots
            seen.setdefault(key, set()).add((digest, ballots))
        assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in digests(scratch).items()}


def test_rows_stay_where_they_came_and_a_removal_closes_them_up():
    m = Measured.build(BASIS, batch_of([5, 1, 9], 0))
    assert m.ids.tolist() == ["b0001", "b0005", "b0009"] and m.order.tolist() == [0, 1, 2]
    m.apply(batch_of([3, 7], 0), [])
    assert m.ids.tolist() == ["b0001", "b0003", "b0005", "b0007", "b0009"]
    assert m.order.tolist() == [0, 3, 1, 4, 2]  # the new ones appended, listed in id order
    m.apply(Batch(), ["b0005"])
    assert m.ids.tolist() == ["b0001", "b0003", "b0007", "b0009"] and m.order.tolist() == [0, 2, 3, 1]


def test_asked_sets_past_the_store_start_again_and_still_count_right(monkeypatch):
    from sipas_scoring.application import measured

    monkeypatch.setattr(measured, "SETS_KEPT", 3)
    m = Measured.build(BASIS, batch_of(list(range(40)), 1))
    sets = [np.array([k % n == 0 for k in range(m.width)]) for n in (2, 3, 5, 7)]
    m.answering(sets[:2])
    m.apply(batch_of(list(range(40, 60)), 1), ["b0003"])  # kept counts follow the ballots
    asked = [sets[0], sets[2], sets[3]]  # one kept and two new: past three, the store starts again
    columns = m.answering(asked)
    assert len(m._set_column) == 3
    for column, mask in zip(columns, asked, strict=True):
        for cell in range(len(m.cell_rows)):
            rows = m.row_cell == cell
            assert m.cell_hits[cell, column] == ((m.x[rows] > 0) & mask).any(axis=1).sum()
