"""Answer codes: the bytes a recount reads count exactly what the ballots' tallies count."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_scoring.domain.codes import TAG_BYTES, Codebook
from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, ScaleLevel, five_level_scale
from sipas_scoring.domain.tallies import ballot_tallies, sum_tallies

INSTRUMENT = Instrument(
    scale=five_level_scale(),
    factors=(Factor("F1", ("a", "b"), overall_item="o1"), Factor("F2", ("c",), overall_item="o2"),
             Factor("F3", ("d", "e", "f"), overall_item="o3")),
    overall_item="o",
    expectation_options=tuple(f"E{k}" for k in range(1, 11)),  # more than 8: two bytes of options
)
ITEMS = ("a", "b", "c", "d", "e", "f", "o1", "o2", "o3", "o")
BOOK = Codebook.of(INSTRUMENT)

answer = st.one_of(st.none(), st.integers(1, 5))
ballot = st.builds(
    lambda ident, answers, expectations: Ballot(str(ident), answers, frozenset(expectations)),
    st.uuids(),
    st.dictionaries(st.sampled_from(ITEMS), answer, max_size=len(ITEMS)),
    st.sets(st.sampled_from(INSTRUMENT.expectation_options)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ballot, max_size=40))
def test_codes_count_exactly_what_the_ballots_tallies_sum_to(ballots):
    blob = b"".join(BOOK.encode(b.answers, b.expectations) for b in ballots)
    assert BOOK.tallies(BOOK.matrix(blob)) == sum_tallies(ballot_tallies(INSTRUMENT, b) for b in ballots)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ballot, st.integers(0, 4)), max_size=40))
def test_codes_counted_for_many_owners_at_once_are_each_owners_ballots_tallies(owned):
    blob = b"".join(BOOK.encode(b.answers, b.expectations) for b, _ in owned)
    found = BOOK.tallies_of(BOOK.matrix(blob), [owner for _, owner in owned], 5)
    assert found == [dict(sum_tallies(ballot_tallies(INSTRUMENT, b) for b, owner in owned if owner == k))
                     for k in range(5)]


@settings(max_examples=200, deadline=None)
@given(ballot, st.randoms(use_true_random=False))
def test_codes_do_not_depend_on_the_order_the_answers_come_in(b, rng):
    """Codes are arranged per order of the answers' keys (kept): every order gives the same bytes."""
    shuffled = list(b.answers.items())
    rng.shuffle(shuffled)
    assert BOOK.encode(dict(shuffled), b.expectations) == BOOK.encode(b.answers, b.expectations)
    assert BOOK.encode(dict(shuffled), b.expectations) == BOOK.encode(dict(sorted(b.answers.items())), b.expectations)


def test_an_instrument_of_one_item_has_codes_too():
    book = Codebook.of(Instrument(scale=five_level_scale(), factors=(Factor("F1", ("o",)),), overall_item=None))
    assert book.encode({"o": 3}, [])[TAG_BYTES:] == bytes([2 + 2])
    assert book.encode({}, [])[TAG_BYTES:] == bytes([0])


def test_the_layout_is_tag_then_one_byte_an_item_then_option_bits():
    codes = BOOK.encode({"a": 5, "c": None, "o": 1}, ["E1", "E10"])
    assert len(codes) == BOOK.width == TAG_BYTES + len(ITEMS) + 2
    assert codes[:TAG_BYTES] == BOOK.tag
    body = codes[TAG_BYTES:TAG_BYTES + len(ITEMS)]
    assert list(body) == [6, 0, 1, 0, 0, 0, 0, 0, 0, 2]  # a=5 -> 2+4, b absent, c unanswered, o=1 -> 2+0
    assert list(codes[-2:]) == [0b1, 0b10]  # E1 is bit 0 of the first byte, E10 bit 1 of the second


@pytest.mark.parametrize("answers, expectations", [
    ({"zz": 4}, []),             # an item the instrument lacks
    ({"a": 7}, []),              # off the scale
    ({"a": True}, []),           # not an integer
    ({"a": 4.0}, []),
    ({"a": 4}, ["E99"]),         # an option the instrument lacks
    (None, []),                  # a tombstone carries no answers
])
def test_what_the_codebook_cannot_say_gets_no_codes(answers, expectations):
    assert BOOK.encode(answers, expectations) is None


def test_codes_of_another_instrument_version_are_refused():
    other = Codebook.of(Instrument(scale=(ScaleLevel(1, False), ScaleLevel(2, True)), factors=INSTRUMENT.factors,
                                   overall_item="o", expectation_options=INSTRUMENT.expectation_options))
    assert other.tag != BOOK.tag
    with pytest.raises(ValueError, match="another codebook"):
        BOOK.matrix(other.encode({"a": 2}, []))
    with pytest.raises(ValueError, match="whole rows"):
        BOOK.matrix(BOOK.encode({"a": 4}, [])[:-1])


def test_no_ballots_count_nothing():
    assert BOOK.tallies(BOOK.matrix(b"")) == {}
