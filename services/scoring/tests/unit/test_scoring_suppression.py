from hypothesis import given
from hypothesis import strategies as st

from sipas_scoring.domain.suppression import Cell, suppress, unrecoverable


def test_small_cells_are_insufficient_samples():
    result = suppress([Cell("A", 29), Cell("B", 30)])
    assert result.reasons == {"A": "insufficient_sample"}
    assert result.shown("B") and result.suppressed("A")
    assert suppress([Cell("A", 29)], min_n=20).reasons == {}


def test_one_hidden_child_hides_the_smallest_shown_sibling():
    cells = [Cell("P", 200), Cell("A", 10, "P"), Cell("B", 50, "P"), Cell("C", 40, "P"), Cell("D", 100, "P")]
    result = suppress(cells)
    assert result.reasons == {"A": "insufficient_sample", "C": "complementary"}
    assert unrecoverable(cells, result)


def test_two_hidden_children_need_no_complement():
    cells = [Cell("P", 200), Cell("A", 10, "P"), Cell("B", 20, "P"), Cell("C", 170, "P")]
    assert suppress(cells).reasons == {"A": "insufficient_sample", "B": "insufficient_sample"}


def test_hidden_only_child_hides_its_parent_and_that_cascades():
    cells = [
        Cell("VN", 840),
        Cell("P", 40, "VN"), Cell("Q", 500, "VN"), Cell("R", 300, "VN"),
        Cell("P.a", 20, "P"),  # P's only agency: P's figure is P.a's figure
    ]
    result = suppress(cells)
    assert result.reasons == {"P.a": "insufficient_sample", "P": "complementary", "R": "complementary"}
    assert unrecoverable(cells, result)


def test_a_hidden_parent_with_every_child_shown_hides_its_smallest_child():
    # Q hides R's neighbour P (complementary at the national level); Q's agencies would add up to Q.
    cells = [
        Cell("VN", 400),
        Cell("P", 20, "VN"), Cell("Q", 180, "VN"), Cell("R", 200, "VN"),
        Cell("Q.a", 60, "Q"), Cell("Q.b", 120, "Q"),
    ]
    result = suppress(cells)
    assert result.reasons == {"P": "insufficient_sample", "Q": "complementary", "Q.a": "complementary"}
    assert unrecoverable(cells, result)


def test_a_parent_not_published_needs_no_complement():
    cells = [Cell("A", 10, "P"), Cell("B", 50, "P")]
    assert suppress(cells).reasons == {"A": "insufficient_sample"}


@st.composite
def trees(draw):
    cells = [Cell("root", draw(st.integers(0, 1000)))]
    for i in range(draw(st.integers(0, 30))):
        parent = draw(st.sampled_from([c.key for c in cells]))
        cells.append(Cell(f"c{i}", draw(st.integers(0, 100)), parent))
    return cells


@given(trees(), st.integers(1, 60))
def test_no_shown_total_has_exactly_one_hidden_child(cells, min_n):
    result = suppress(cells, min_n)
    assert unrecoverable(cells, result)
    assert all(result.suppressed(c.key) for c in cells if c.n < min_n)
    assert all(result.reasons[c.key] == "complementary" for c in cells if c.n >= min_n and result.suppressed(c.key))
