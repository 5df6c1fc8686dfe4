"""A campaign's tallies as stored: one row per agency, its counts in the campaign's key layout.

``sc_tally_keys`` holds each campaign's layout — its tally keys (``ballots``, ``item:Q1:5``, ``expect:E2``, …)
in the order their counts are kept — and ``sc_tallies`` one row per (campaign, agency) whose ``counts[i]``
counts ``keys[i]``; an array shorter than the layout counts none of the keys after its end. A key seen for
the first time is appended to the layout, so counts written before stay right; :func:`replace` (a recount)
writes a fresh layout, keys sorted, with all of the campaign's rows. A count back at zero stays a zero in its
place and a row of zeros is deleted: readers get only keys counted, so the state compares with a recount
however the layout is ordered.

Every writer locks the campaign's layout row first (``FOR UPDATE``), so the writers of one campaign take
turns: a row is read, added to and written back without another writer's change in between. Readers take
the layout and the rows from one statement, one snapshot.

Why a row per agency (migration 0012): a counted ballot changes some thirty-five keys of its agency; as one
row per key, each an ``INSERT … ON CONFLICT DO UPDATE``, that was a third of a core of PostgreSQL at 1,000
ballots/s (``docs/performance-scoring.md``). A run of ballots now reads and rewrites one row per agency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.copy import copy_records
from sipas_scoring.adapters.tables import tallies

_LOCK = text("SELECT campaign_id, keys FROM sc_tally_keys WHERE campaign_id = ANY(CAST(:ids AS text[]))"
             " ORDER BY campaign_id FOR UPDATE")
_NEW_LAYOUTS = text("INSERT INTO sc_tally_keys (campaign_id, keys) SELECT unnest(CAST(:ids AS text[])), '{}'"
                    " ON CONFLICT (campaign_id) DO NOTHING")
_SET_LAYOUTS = text("UPDATE sc_tally_keys SET keys = CAST(v.k AS text[])"
                    " FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[])) AS v(c, k)"
                    " WHERE sc_tally_keys.campaign_id = v.c")
_ROWS = text("SELECT t.campaign_id, t.agency_id, t.counts FROM sc_tallies AS t"
             " JOIN unnest(CAST(:campaign_ids AS text[]), CAST(:agency_ids AS text[])) AS v(c, a)"
             " ON t.campaign_id = v.c AND t.agency_id = v.a")
_WRITE = text("INSERT INTO sc_tallies (campaign_id, agency_id, counts)"
              " SELECT v.c, v.a, CAST(v.n AS bigint[])"
              " FROM unnest(CAST(:campaign_ids AS text[]), CAST(:agency_ids AS text[]), CAST(:counts AS text[]))"
              " AS v(c, a, n)"
              " ON CONFLICT (campaign_id, agency_id) DO UPDATE SET counts = EXCLUDED.counts")
_DROP = text("DELETE FROM sc_tallies"
             " USING unnest(CAST(:campaign_ids AS text[]), CAST(:agency_ids AS text[])) AS v(c, a)"
             " WHERE sc_tallies.campaign_id = v.c AND sc_tallies.agency_id = v.a")
_READ = ("SELECT NULL AS agency_id, keys, NULL AS counts FROM sc_tally_keys WHERE campaign_id = :c"
         " UNION ALL SELECT agency_id, NULL, counts FROM sc_tallies WHERE campaign_id = :c")
_READ_ALL, _READ_SOME = text(_READ), text(_READ + " AND agency_id = ANY(CAST(:only AS text[]))")


class NegativeCount(ValueError):
    """A change would take a count below zero: a ballot taken away that was never counted (a bug upstream)."""


def _array(counts: Iterable[int]) -> str:
    """A ``bigint[]`` literal: bound as text and cast, one value a row (the rows' lengths differ)."""
    return "{" + ",".join(map(str, counts)) + "}"


async def _locked_layouts(conn: AsyncConnection, campaign_ids: Sequence[str]) -> dict[str, list[str]]:
    """The campaigns' layouts, locked for this transaction (made empty first for a campaign without one)."""
    ids = sorted(set(campaign_ids))
    found = {c: list(keys) for c, keys in await conn.execute(_LOCK, {"ids": ids})}
    missing = [c for c in ids if c not in found]
    if missing:
        await conn.execute(_NEW_LAYOUTS, {"ids": missing})
        found.update({c: list(keys) for c, keys in await conn.execute(_LOCK, {"ids": missing})})
    return found


async def add(conn: AsyncConnection, changes: Mapping[tuple[str, str], Mapping[str, int]]) -> None:
    """Add ``changes`` — (campaign, agency) → key → count to add (negative to take away) — to the stored tallies,
    in ``conn``'s transaction."""
    changes = {pair: {k: n for k, n in bag.items() if n} for pair, bag in changes.items()}
    changes = {pair: bag for pair, bag in changes.items() if bag}
    if not changes:
        return
    layouts = await _locked_layouts(conn, [c for c, _ in changes])
    grown: dict[str, list[str]] = {}
    places: dict[str, dict[str, int]] = {}
    for campaign_id, layout in layouts.items():
        place = places[campaign_id] = {key: k for k, key in enumerate(layout)}
        new = sorted({key for (c, _), bag in changes.items() if c == campaign_id for key in bag} - place.keys())
        if new:
            place.update((key, len(layout) + k) for k, key in enumerate(new))
            grown[campaign_id] = layout + new
    if grown:
        ids = sorted(grown)
        await conn.execute(_SET_LAYOUTS, {"ids": ids, "keys": [_array_text(grown[c]) for c in ids]})
    pairs = sorted(changes)
    stored = {(c, a): counts for c, a, counts in await conn.execute(_ROWS, {
        "campaign_ids": [c for c, _ in pairs], "agency_ids": [a for _, a in pairs]})}
    written: list[tuple[str, str, str]] = []
    emptied: list[tuple[str, str]] = []
    for pair in pairs:
        place = places[pair[0]]
        counts = list(stored.get(pair) or ())
        counts.extend([0] * (len(place) - len(counts)))
        for key, n in changes[pair].items():
            k = place[key]
            counts[k] += n
            if counts[k] < 0:
                raise NegativeCount(f"{pair[0]}/{pair[1]}: {key} would be {counts[k]}")
        if any(counts):
            written.append((*pair, _array(counts)))
        elif pair in stored:
            emptied.append(pair)
    if written:
        await conn.execute(_WRITE, {"campaign_ids": [c for c, _, _ in written],
                                    "agency_ids": [a for _, a, _ in written], "counts": [n for _, _, n in written]})
    if emptied:
        await conn.execute(_DROP, {"campaign_ids": [c for c, _ in emptied], "agency_ids": [a for _, a in emptied]})


def _array_text(keys: Sequence[str]) -> str:
    """A ``text[]`` literal of the keys, each quoted (a key may hold any character)."""
    return "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys) + "}"


async def replace(conn: AsyncConnection, campaign_id: str, counted: Mapping[tuple[str, str], int]) -> None:
    """The campaign's tallies replaced by ``counted`` ((agency, key) → count, e.g. a recount), keys sorted."""
    await _locked_layouts(conn, [campaign_id])
    await conn.execute(tallies.delete().where(tallies.c.campaign_id == campaign_id))
    keys = sorted({key for (_, key), n in counted.items() if n})
    await conn.execute(_SET_LAYOUTS, {"ids": [campaign_id], "keys": [_array_text(keys)]})
    place = {key: k for k, key in enumerate(keys)}
    rows: dict[str, list[int]] = {}
    for (agency_id, key), n in counted.items():
        if n:
            if n < 0:
                raise NegativeCount(f"{campaign_id}/{agency_id}: {key} would be {n}")
            rows.setdefault(agency_id, [0] * len(keys))[place[key]] = n
    if rows:  # COPY, in the transaction (the statements above began it)
        await copy_records(conn, tallies.name, ("campaign_id", "agency_id", "counts"),
                           [(campaign_id, a, rows[a]) for a in sorted(rows)])


async def read(conn: AsyncConnection, campaign_id: str, only: Sequence[str] | None = None) -> dict[str, Counter[str]]:
    """Agency → its tallies (keys counted only), of every agency of the campaign or of ``only``."""
    if only is not None and not only:
        return {}
    params = {"c": campaign_id} if only is None else {"c": campaign_id, "only": sorted(set(only))}
    keys: Sequence[str] = ()
    rows: list[tuple[str, Sequence[int]]] = []
    for agency_id, layout, counts in await conn.execute(_READ_ALL if only is None else _READ_SOME, params):
        if agency_id is None:
            keys = layout
        else:
            rows.append((agency_id, counts))
    out: dict[str, Counter[str]] = {}
    for agency_id, counts in rows:
        if len(counts) > len(keys):
            raise RuntimeError(f"tallies of {campaign_id}/{agency_id} longer than the campaign's layout")
        found = Counter({key: n for key, n in zip(keys, counts, strict=False) if n})  # short: no later key
        if found:
            out[agency_id] = found
    return out


async def read_pairs(conn: AsyncConnection, campaign_id: str) -> dict[tuple[str, str], int]:
    """(agency, key) → count, keys counted only: the campaign's tallies as a recount gives them."""
    return {(agency_id, key): n for agency_id, bag in (await read(conn, campaign_id)).items() for key, n in bag.items()}
