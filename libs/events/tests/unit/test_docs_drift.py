"""The generated event documents must match the catalogue (run `make docs` after changing events)."""

from pathlib import Path

from sipas_events.docgen import drift, rendered

DOCS = Path(__file__).resolve().parents[4] / "docs"


def test_generated_docs_match_the_catalogue():
    assert drift(DOCS) == [], "docs/events.md or docs/asyncapi.yaml is stale: run `make docs`"


def test_asyncapi_lists_every_event_with_its_subject():
    import yaml

    doc = yaml.safe_load(rendered()["asyncapi.yaml"])
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["ballots.BallotAccepted"]["address"] == "sipas.ballots.BallotAccepted.{province}"
    assert "registry.AgencyRegistered.v1" in doc["components"]["messages"]
