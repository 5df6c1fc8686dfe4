"""Platform versus R's ``survey`` package, figure by figure, on one synthetic stratified sample.

    python services/scoring/validation/compare.py [--workdir DIR] [--markdown]

Runs ``generate.py`` (the sample), ``platform_estimates.py`` (the scoring domain's figures, by both of
its estimators: the reference over ballots and the moments estimator the figures worker runs) and
``Rscript check.R`` (the same figures by ``svyratio``/``svycontrast``), then prints every figure side
by side with the relative differences, and exits 1 when any differs by more than the tolerances
below (2 when R or its ``survey`` package is missing). See docs/statistics-validation.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ESTIMATE_TOLERANCE = 1e-9
"""Relative: the platform's estimate is exact, R's a float sum."""
SE_TOLERANCE = 1e-6
DEFF_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Figure:
    estimator: str
    """``reference`` (over ballots) or ``moments`` (over weight groups' moments, as the figures worker)."""
    design: str
    """``with_fpc`` or ``without_fpc``."""
    name: str
    platform: dict[str, float]
    r: dict[str, float]

    @property
    def same_deff_definition(self) -> bool:
        """survey's own deff counts every sampled row; it is ours when every row answers the figure."""
        return self.r["n"] == self.r["rows"]

    def difference(self, key: str, r_key: str | None = None) -> float:
        ours, theirs = self.platform[key], self.r[r_key or key]
        return abs(ours - theirs) / abs(theirs) if theirs else abs(ours - theirs)

    def mismatches(self) -> list[str]:
        checks = [
            ("estimate", "estimate", ESTIMATE_TOLERANCE),
            ("se", "se", SE_TOLERANCE),
            ("deff", "deff", DEFF_TOLERANCE),
        ]
        if self.same_deff_definition:
            checks.append(("deff", "deff_r", DEFF_TOLERANCE))
        found = [
            f"{self.estimator} {self.design} {self.name}: {key} {self.platform[key]!r} vs R {r_key} {self.r[r_key]!r}"
            for key, r_key, tolerance in checks
            if not self.difference(key, r_key) <= tolerance
        ]
        if self.platform["n"] != self.r["n"]:
            found.append(f"{self.estimator} {self.design} {self.name}: n {self.platform['n']} vs R {self.r['n']}")
        return found


class RMissing(RuntimeError):
    pass


def r_available() -> str | None:
    """Why R cannot run the check, or ``None`` when it can."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript is not installed (apt-get install r-base-core r-cran-survey)"
    probe = [rscript, "-e", 'quit(status = !requireNamespace("survey", quietly = TRUE))']
    if subprocess.run(probe, capture_output=True, check=False).returncode:
        return "R's survey package is not installed (apt-get install r-cran-survey)"
    return None


def run(workdir: Path) -> list[Figure]:
    """Generate the sample, compute both sides, and pair their figures (refusing unpaired ones)."""
    missing = r_available()
    rscript = shutil.which("Rscript")
    if missing or rscript is None:
        raise RMissing(missing)
    platform_json, r_csv = workdir / "platform.json", workdir / "r.csv"
    for command in (
        [sys.executable, str(HERE / "generate.py"), str(workdir)],
        [sys.executable, str(HERE / "platform_estimates.py"), str(workdir), str(platform_json)],
        [rscript, str(HERE / "check.R"), str(workdir), str(r_csv)],
    ):
        subprocess.run(command, check=True, capture_output=True, text=True)
    platform = json.loads(platform_json.read_text())
    with r_csv.open(newline="") as f:
        r = {(row.pop("design"), row.pop("figure")): {k: float(v) for k, v in row.items()} for row in csv.DictReader(f)}
    out = []
    for estimator, designs in platform.items():
        ours = {(design, name): values for design, figures in designs.items() for name, values in figures.items()}
        if ours.keys() != r.keys():
            only_ours, only_r = sorted(ours.keys() - r.keys()), sorted(r.keys() - ours.keys())
            raise ValueError(f"figures differ: {estimator} only {only_ours}, R only {only_r}")
        out += [Figure(estimator, design, name, ours[design, name], r[design, name]) for design, name in ours]
    return out


def table(figures: Sequence[Figure]) -> str:
    """Two Markdown tables: estimates and standard errors; design effects by both definitions."""
    lines = [
        "| estimator | design | figure | n | estimate (platform) | estimate (R) | rel. diff | SE (platform) | SE (R) "
        "| rel. diff |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.estimator} | {f.design} | {f.name} | {f.platform['n']} | {f.platform['estimate']:.12f} "
            f"| {f.r['estimate']:.12f} | {f.difference('estimate'):.1e} "
            f"| {f.platform['se']:.12f} | {f.r['se']:.12f} | {f.difference('se'):.1e} |"
        )
    lines += [
        "",
        "| estimator | design | figure | answering / rows | deff (platform) | deff (R, platform's definition) "
        "| rel. diff | deff (survey's own) | same definition |",
        "|---|---|---|--:|--:|--:|--:|--:|:-:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.estimator} | {f.design} | {f.name} | {f.r['n']:.0f} / {f.r['rows']:.0f} | {f.platform['deff']:.10f} "
            f"| {f.r['deff']:.10f} | {f.difference('deff'):.1e} | {f.r['deff_r']:.10f} "
            f"| {'yes' if f.same_deff_definition else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the sample and both outputs here (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            figures = run(workdir)
        except RMissing as missing:
            print(missing, file=sys.stderr)
            return 2
    print(table(figures))
    problems = [problem for f in figures for problem in f.mismatches()]
    print()
    if problems:
        print(f"DISAGREE ({len(problems)}):", *problems, sep="\n  ")
        return 1
    worst = {key: max(f.difference(key) for f in figures) for key in ("estimate", "se", "deff")}
    print(
        f"AGREE: {len(figures)} figures; largest relative differences: "
        f"estimate {worst['estimate']:.1e} (tolerance {ESTIMATE_TOLERANCE:g}), "
        f"SE {worst['se']:.1e} ({SE_TOLERANCE:g}), deff {worst['deff']:.1e} ({DEFF_TOLERANCE:g})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
