import dataclasses
import datetime as dt
import hashlib
import hmac
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipas_sampling.domain.allocation import build_plan, plan_proportional
from sipas_sampling.domain.digest import frame_digest
from sipas_sampling.domain.draw import ALGORITHM_VERSION, ReservePolicy, draw_sample, verify_draw
from sipas_sampling.domain.errors import FrameMismatch, FrameOrderError, InvalidParameter
from sipas_sampling.domain.frame import FrameRow
from sipas_sampling.domain.prng import RandomStream, ordered_sample, seed_commitment
from sipas_sampling.domain.pseudonym import unit_id, unit_ids
from sipas_sampling.domain.strata import Stratification

SEED = "9f1c2a7be0d54c3f8a61b2e4d7c90f13"
OTHER_SEED = "0000000000000000000000000000000000000000000000000000000000000001"
SALT = b"campaign-2025-H29-salt-16+"
BY_AGENCY = Stratification.of("agency_code")


def make_frame(sizes):
    rows = []
    for agency, count in sizes.items():
        for i in range(count):
            rows.append(FrameRow(
                agency_code=agency, procedure="Đăng ký khai sinh", service_field="hộ tịch" if i % 2 else "đất đai",
                dossier_id=f"{agency}-{i:05d}", completed_on=dt.date(2024, 3, 1) + dt.timedelta(days=i % 200),
                respondent_type="individual", name=f"Người {agency} {i}", phone="0912345678", address=None,
            ))
    return rows


FRAME = make_frame({"H29.05": 120, "H29.07": 45, "H29.11": 300})
PLAN = plan_proportional(BY_AGENCY.names, BY_AGENCY.populations(FRAME), 100, floor=20)


def run(frame=FRAME, plan=PLAN, stratification=BY_AGENCY, **kwargs):
    kwargs.setdefault("seed", SEED)
    kwargs.setdefault("campaign_salt", SALT)
    return draw_sample(frame, plan, stratification, **kwargs)


def test_draw_follows_the_plan():
    draw = run()
    assert draw.algorithm_version == ALGORITHM_VERSION
    assert draw.frame_digest == frame_digest(FRAME)
    assert draw.seed_commitment == hashlib.sha256(SEED.encode()).hexdigest()
    for stratum, planned in zip(draw.strata, PLAN.strata, strict=True):
        assert stratum.key == planned.key and stratum.population == planned.population
        assert len(stratum.selected) == planned.sample
        assert all(u.stratum == stratum.key and u.agency_code == stratum.key[0] for u in stratum.selected)
    assert sum(1 for _ in draw.selected()) == 100


def test_same_inputs_same_draw_and_another_seed_another_draw():
    assert run() == run()
    assert run(seed=OTHER_SEED).strata != run().strata


def test_row_order_does_not_matter():
    assert run(frame=list(reversed(FRAME))) == run()


def test_no_duplicates_and_reserves_are_disjoint_and_ordered():
    draw = run(reserves=ReservePolicy(count=10))
    for stratum in draw.strata:
        chosen = [u.position for u in stratum.selected]
        backups = [u.position for u in stratum.reserves]
        assert len(set(chosen)) == len(chosen)
        assert len(set(backups)) == len(backups) == min(10, stratum.population - len(chosen))
        assert not set(chosen) & set(backups)
        assert [u.rank for u in stratum.selected] == list(range(1, len(chosen) + 1))
        assert [u.rank for u in stratum.reserves] == list(range(1, len(backups) + 1))
    ids = [u.unit_id for s in draw.strata for u in (*s.selected, *s.reserves)]
    assert len(set(ids)) == len(ids)


def test_reserve_ratio_rounds_up_and_never_changes_the_sample():
    by_count = run(reserves=ReservePolicy(count=3))
    by_ratio = run(reserves=ReservePolicy.of_ratio("0.5"))
    for a, b, planned in zip(by_count.strata, by_ratio.strata, PLAN.strata, strict=True):
        assert a.selected == b.selected
        assert len(b.reserves) == min(-(-planned.sample // 2), planned.population - planned.sample)
        assert a.reserves == b.reserves[:3]
    with pytest.raises(InvalidParameter):
        ReservePolicy()
    with pytest.raises(InvalidParameter):
        ReservePolicy(count=1, ratio=ReservePolicy.of_ratio(1).ratio)


def test_the_draw_is_pinned():
    # Golden values: if this fails, the algorithm changed and needs a new ALGORITHM_VERSION.
    draw = run(reserves=ReservePolicy(count=2))
    small = draw.stratum(("H29.07",))
    assert [u.position for u in small.selected] == GOLDEN_SELECTED
    assert [u.position for u in small.reserves] == GOLDEN_RESERVES
    assert small.selected[0].unit_id == GOLDEN_UNIT_ID


GOLDEN_SELECTED = [26, 44, 35, 1, 12, 13, 16, 23, 11, 4, 17, 5, 42, 19, 20, 43, 32, 14, 34, 18]
GOLDEN_RESERVES = [21, 30]
GOLDEN_UNIT_ID = "sdxhd5ad4oiqdkc3hmt2aezp"  # frame digest sipas-frame/v2


def test_random_stream_follows_its_published_definition():
    stream = RandomStream(SEED, "label")
    words = [stream.word() for _ in range(5)]
    blocks = [hmac.new(SEED.encode("ascii"), (5).to_bytes(4, "big") + b"label" + i.to_bytes(8, "big"),
                       hashlib.sha256).digest() for i in range(2)]
    independent = [int.from_bytes(b[j:j + 8], "big") for b in blocks for j in range(0, 32, 8)]
    assert words == independent[:5]
    assert words[0] == 14654759979811650265


def test_stratification_by_several_dimensions():
    by_field = Stratification.of("agency_code", "service_field", level=lambda row: "commune")
    plan = plan_proportional(by_field.names, by_field.populations(FRAME), 60)
    draw = run(plan=plan, stratification=by_field)
    assert {s.key for s in draw.strata} == {(a, f, "commune") for a in ("H29.05", "H29.07", "H29.11")
                                            for f in ("hộ tịch", "đất đai")}
    assert sum(len(s.selected) for s in draw.strata) == 60
    with pytest.raises(InvalidParameter):
        Stratification.of("agency")


def test_the_frame_must_be_the_planned_one():
    with pytest.raises(FrameMismatch, match="expected"):
        run(expected_digest="0" * 64)
    with pytest.raises(FrameMismatch, match="plan counts"):
        run(frame=FRAME[1:])
    with pytest.raises(InvalidParameter, match="stratifies"):
        run(stratification=Stratification.of("service_field"))
    with pytest.raises(FrameOrderError):
        run(frame=[*FRAME, FRAME[0]])
    twin = dataclasses.replace(FRAME[0], agency_code="H29.07")
    with pytest.raises(FrameMismatch, match="twice"):
        frame = [*FRAME, twin]
        run(frame=frame, plan=plan_proportional(BY_AGENCY.names, BY_AGENCY.populations(frame), 100))


def test_seed_and_salt_must_be_strong():
    for weak in ("1234", "9F1C2A7BE0D54C3F8A61B2E4D7C90F13", "z" * 32):
        with pytest.raises(InvalidParameter):
            run(seed=weak)
    with pytest.raises(InvalidParameter):
        run(campaign_salt=b"short")


def test_commit_reveal_verification():
    published = run()
    assert seed_commitment(SEED) == published.seed_commitment
    check = verify_draw(published, list(reversed(FRAME)), PLAN, BY_AGENCY, seed=SEED, campaign_salt=SALT)
    assert check.ok and check.problems == ()


def test_verification_catches_a_wrong_seed_frame_or_tampering():
    published = run()
    wrong_seed = verify_draw(published, FRAME, PLAN, BY_AGENCY, seed=OTHER_SEED, campaign_salt=SALT)
    assert not wrong_seed.ok and "commitment" in wrong_seed.problems[0]

    edited = [dataclasses.replace(FRAME[0], name="Người khác"), *FRAME[1:]]
    other_frame = verify_draw(published, edited, PLAN, BY_AGENCY, seed=SEED, campaign_salt=SALT)
    assert not other_frame.ok and "digest" in other_frame.problems[0]

    first = published.strata[0]
    swapped = dataclasses.replace(first, selected=(first.reserves[0], *first.selected[1:]))
    tampered = dataclasses.replace(published, strata=(swapped, *published.strata[1:]))
    check = verify_draw(tampered, FRAME, PLAN, BY_AGENCY, seed=SEED, campaign_salt=SALT)
    assert check.problems == ("stratum H29.05 differs from the re-run",)

    future = dataclasses.replace(published, algorithm_version="sipas-srswor-hmac-sha256/2")
    assert "cannot be re-run" in verify_draw(future, FRAME, PLAN, BY_AGENCY, seed=SEED, campaign_salt=SALT).problems[0]


def test_unit_ids_are_pseudonymous_and_per_campaign():
    a = unit_id(SALT, "H29.05-00001")
    assert len(a) == 24 and a.isalnum() and a == a.lower()
    assert a == unit_id(SALT, " H29.05-00001 ")
    assert a != unit_id(SALT, "H29.05-00002")
    assert a != unit_id(b"another-campaign-salt", "H29.05-00001")
    assert "H29" not in a


@given(st.lists(st.text(min_size=1, max_size=30), max_size=20))
def test_unit_ids_keyed_once_give_unit_id(dossiers):
    many = unit_ids(SALT)
    assert [many(d) for d in dossiers] == [unit_id(SALT, d) for d in dossiers]


def test_empty_strata_and_zero_samples():
    plan = build_plan(("agency_code",), {("H29.05",): 120, ("H29.07",): 45, ("H29.11",): 300, ("H29.99",): 0},
                      {("H29.05",): 0, ("H29.07",): 45, ("H29.11",): 1, ("H29.99",): 0})
    draw = run(plan=plan, reserves=ReservePolicy(count=5))
    assert [len(s.selected) for s in draw.strata] == [0, 45, 1, 0]
    assert [len(s.reserves) for s in draw.strata] == [5, 0, 5, 0]


# --- the random stream and the shuffle ----------------------------------------------------------

@given(st.integers(min_value=1, max_value=5_000), st.data(), st.integers(min_value=0, max_value=2**32))
def test_ordered_sample_gives_n_distinct_indices_in_range(population, data, salt):
    size = data.draw(st.integers(min_value=0, max_value=min(population, 300)))
    picks = ordered_sample(RandomStream(SEED, str(salt)), population, size)
    assert len(picks) == size == len(set(picks))
    assert all(0 <= p < population for p in picks)


def test_census_is_a_permutation():
    assert sorted(ordered_sample(RandomStream(SEED, "census"), 50, 50)) == list(range(50))
    with pytest.raises(InvalidParameter):
        ordered_sample(RandomStream(SEED), 3, 4)


def test_every_index_is_reachable_and_roughly_equally_often():
    population, size, runs = 7, 2, 700
    counts: Counter[int] = Counter()
    firsts: Counter[int] = Counter()
    for r in range(runs):
        picks = ordered_sample(RandomStream(SEED, "uniformity", str(r)), population, size)
        counts.update(picks)
        firsts[picks[0]] += 1
    expected = runs * size / population  # 200 each
    assert set(counts) == set(range(population))
    assert all(0.75 * expected < c < 1.25 * expected for c in counts.values())
    assert set(firsts) == set(range(population))


def test_below_is_unbiased_near_the_word_size():
    stream = RandomStream(SEED, "big")
    bound = 2**63 + 1  # rejection discards almost half the words; values must still cover both halves
    values = [stream.below(bound) for _ in range(200)]
    assert all(0 <= v < bound for v in values)
    assert any(v < 2**62 for v in values) and any(v > 2**62 for v in values)
    small = RandomStream(SEED, "small")
    assert {small.below(3) for _ in range(60)} == {0, 1, 2}
    with pytest.raises(InvalidParameter):
        stream.below(0)


def test_no_stratification_is_one_stratum():
    whole = Stratification.of()
    plan = plan_proportional(whole.names, whole.populations(FRAME), 50)
    draw = run(plan=plan, stratification=whole)
    [stratum] = draw.strata
    assert stratum.key == () and stratum.population == len(FRAME) and len(stratum.selected) == 50
