"""A reproducible synthetic stratified sample of ``share-satisfied`` ballots, as CSV.

    python generate.py OUT_DIR      writes OUT_DIR/ballots.csv and OUT_DIR/instrument.csv

Six strata (e.g. agencies) with different frame sizes N_h and sampled sizes n_h; some sampled units
do not respond, and the r_h respondents of a stratum carry its weight N_h ÷ r_h (computed by the
platform's :func:`weights.stratum_weights`, written as the nearest float). Answers are on the 1-5
scale, correlated within a ballot (a ballot's own propensity) and across its stratum; each item is
left unanswered now and then, and some ballots leave the whole of factor F3 unanswered (not
applicable to them), so a share's denominator is a domain of the sample. The seed is fixed: the same
files every run, on every machine (only ``random.Random.random`` is drawn, whose stream is stable).

ballots.csv: ballot_id, stratum, weight, fpc (N_h), sampled (n_h), responded (r_h), one column per
item (empty = no answer). instrument.csv: factor, item, in instrument order.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

from sipas_scoring.domain.weights import stratum_weights

SEED = 20240917
FACTORS = {"F1": ("a1", "a2", "a3"), "F2": ("b1", "b2"), "F3": ("c1", "c2", "c3", "c4")}
ITEMS = tuple(item for items in FACTORS.values() for item in items)
# stratum: frame size N_h, sampled n_h, response rate, share of satisfied answers in the stratum
STRATA = {
    "S1": (1200, 60, 0.90, 0.85),
    "S2": (800, 45, 0.80, 0.70),
    "S3": (450, 30, 0.95, 0.60),
    "S4": (3000, 80, 0.75, 0.80),
    "S5": (260, 25, 0.85, 0.50),
    "S6": (1500, 50, 0.70, 0.90),
}
# per item: shift of its satisfied share, chance of no answer
ITEM_SHIFT = dict(zip(ITEMS, (0.05, -0.05, 0.0, 0.08, -0.10, 0.0, -0.15, 0.03, 0.06), strict=True))
ITEM_MISSING = dict(zip(ITEMS, (0.02, 0.05, 0.08, 0.03, 0.10, 0.04, 0.12, 0.06, 0.05), strict=True))
F3_NOT_APPLICABLE = 0.12


def sample(rng: random.Random) -> list[dict[str, str]]:
    responded = {s: sum(rng.random() < rate for _ in range(n)) for s, (_, n, rate, _) in STRATA.items()}
    weights = stratum_weights(
        {s: spec[0] for s, spec in STRATA.items()}, {s: spec[1] for s, spec in STRATA.items()}, responded
    )
    rows: list[dict[str, str]] = []
    for stratum, (frame, sampled, _, satisfied) in STRATA.items():
        for _ in range(responded[stratum]):
            propensity = satisfied + 0.4 * (rng.random() - 0.5)
            skips_f3 = rng.random() < F3_NOT_APPLICABLE
            row = {
                "ballot_id": f"{stratum}-{len(rows) + 1:04d}",
                "stratum": stratum,
                "weight": repr(float(weights[stratum])),
                "fpc": str(frame),
                "sampled": str(sampled),
                "responded": str(responded[stratum]),
            }
            for item in ITEMS:
                missing = rng.random() < ITEM_MISSING[item] or (skips_f3 and item in FACTORS["F3"])
                row[item] = "" if missing else str(_level(rng, propensity + ITEM_SHIFT[item]))
            rows.append(row)
    return rows


def _level(rng: random.Random, satisfied: float) -> int:
    if rng.random() < satisfied:
        return 4 + int(rng.random() < 0.45)
    return 1 + int(rng.random() * 3)


def write(out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = sample(random.Random(SEED))  # noqa: S311 - reproducible synthetic data, not a secret
    ballots, instrument = out / "ballots.csv", out / "instrument.csv"
    with ballots.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with instrument.open("w", newline="") as f:
        pairs = csv.writer(f, lineterminator="\n")
        pairs.writerow(["factor", "item"])
        pairs.writerows((factor, item) for factor, items in FACTORS.items() for item in items)
    return ballots, instrument


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUT_DIR")
    for path in write(Path(sys.argv[1])):
        print(f"wrote {path}")
