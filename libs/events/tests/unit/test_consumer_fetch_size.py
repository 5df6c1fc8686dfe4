"""A consumer sizes its fetches by bytes: nats-server cuts a client with more than ``max_pending`` unread as a
slow consumer, which a batch of 1,000 large events did in a national round."""

from sipas_events.consumer import FETCH_BYTES, FIRST_GUESS_BYTES, Consumer
from sipas_events.metrics import BackboneMetrics
from sipas_events.testing import counting_projection


def consumer(batch=1000):
    return Consumer("svc", counting_projection(), None, None, BackboneMetrics("svc"), batch=batch)  # type: ignore[arg-type]


def test_a_fetch_asks_for_about_fetch_bytes_of_the_largest_message_last_fetched():
    c = consumer()
    assert c.fetch_size() == FETCH_BYTES // FIRST_GUESS_BYTES  # before the first fetch: a guess
    c._message_bytes = 174_000  # a draw's SampleDrawn
    assert c.fetch_size() == FETCH_BYTES // 174_000 and c.fetch_size() * 174_000 <= FETCH_BYTES
    c._message_bytes = 800  # an accepted ballot: the consumer's batch bounds it
    assert c.fetch_size() == 1000
    c._message_bytes = 3 * FETCH_BYTES  # larger than a fetch's bytes: one at a time, never none
    assert c.fetch_size() == 1
    assert consumer(batch=50).fetch_size() == 50
