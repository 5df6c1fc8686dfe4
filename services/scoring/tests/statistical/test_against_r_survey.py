"""The scoring domain's weighted estimates, standard errors and design effects agree with R's ``survey``.

Runs ``services/scoring/validation/compare.py`` once (a synthetic stratified sample; the platform's
figures; the same figures by ``svyratio``/``svycontrast`` in R) and checks every figure, with and
without the finite population correction. Needs ``Rscript`` and the ``survey`` package: under CI
(``CI`` set) their absence fails the test, elsewhere it skips it.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import in_ci

VALIDATION = Path(__file__).resolve().parents[2] / "validation"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sipas_scoring_validation_{name}", VALIDATION / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


compare = _load("compare")
generate = _load("generate")

ESTIMATORS = ("reference", "moments")
DESIGNS = ("with_fpc", "without_fpc")
FIGURES = (
    [f"item:{item}" for item in generate.ITEMS]
    + [f"factor:{factor}:{rule}" for factor in generate.FACTORS for rule in ("pooled", "mean_items")]
    + ["overall:mean_factors", "overall:pooled"]
)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], "compare.Figure"]:
    missing = compare.r_available()
    if missing:
        if in_ci():
            pytest.fail(f"CI must check the survey statistics against R, but {missing}: see .ci/run")
        pytest.skip(missing)
    return {(f.estimator, f.design, f.name): f for f in compare.run(tmp_path_factory.mktemp("r-survey"))}


def test_every_index_of_the_instrument_is_compared_for_both_estimators(figures):
    assert sorted(figures) == sorted((estimator, design, name) for estimator in ESTIMATORS for design in DESIGNS
                                     for name in FIGURES)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("name", FIGURES)
def test_figure_agrees_with_r(figures, estimator, design, name):
    figure = figures[estimator, design, name]
    ours, r = figure.platform, figure.r
    assert ours["n"] == r["n"]
    assert ours["estimate"] == pytest.approx(r["estimate"], rel=compare.ESTIMATE_TOLERANCE, abs=0)
    assert ours["se"] == pytest.approx(r["se"], rel=compare.SE_TOLERANCE, abs=0)
    assert ours["se"] > 0
    # deff: R computes the platform's definition (SRS of the n answering ballots) from survey's svyvar
    assert ours["deff"] == pytest.approx(r["deff"], rel=compare.DEFF_TOLERANCE, abs=0)
    if r["n"] == r["rows"]:
        # every sampled ballot answers the figure: survey's own definition is then the same one
        assert ours["deff"] == pytest.approx(r["deff_r"], rel=compare.DEFF_TOLERANCE, abs=0)
    assert ours["effective_n"] == pytest.approx(ours["n"] / r["deff"], rel=compare.DEFF_TOLERANCE)
    assert figure.mismatches() == []


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("name", FIGURES)
def test_the_finite_population_correction_narrows_the_interval(figures, estimator, name):
    with_fpc, without = figures[estimator, "with_fpc", name], figures[estimator, "without_fpc", name]
    assert with_fpc.platform["estimate"] == without.platform["estimate"]
    # every stratum samples between 3 % and 10 % of its frame
    assert 0.9 < with_fpc.platform["se"] / without.platform["se"] < 0.99


@pytest.mark.parametrize("name", FIGURES)
def test_both_estimators_give_the_same_exact_estimate(figures, name):
    for design in DESIGNS:
        reference, moments = figures["reference", design, name], figures["moments", design, name]
        assert moments.platform["estimate"] == reference.platform["estimate"]  # both exact, the same fraction
        assert moments.platform["n"] == reference.platform["n"]


def test_some_figures_rest_on_a_domain_of_the_sample(figures):
    # the sample exercises ballots that do not answer a figure (x = 0), where deff definitions part
    domain = [f for f in figures.values() if f.r["n"] < f.r["rows"]]
    assert domain and any(f.r["n"] == f.r["rows"] for f in figures.values())
