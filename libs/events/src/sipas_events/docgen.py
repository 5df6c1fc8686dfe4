"""Generate ``docs/events.md`` and ``docs/asyncapi.yaml`` from the catalogue; detect drift.

The catalogue is the contract: these documents are derived from it, and CI fails when the
committed copies differ from what the catalogue generates now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sipas_events.catalogue import CATALOGUE
from sipas_events.envelope import Envelope
from sipas_events.naming import stream_name

HEADER = "<!-- Generated from libs/events (the catalogue) by `make docs`. Do not edit by hand. -->\n"


def events_markdown() -> str:
    out = [HEADER, "# Events\n",
           "Every event travels as a CloudEvents 1.0 envelope (structured JSON). Subjects are "
           "`sipas.<service>.<Event>.<province|national>`; each producing service has one JetStream stream "
           "`SIPAS_<SERVICE>`; `Nats-Msg-Id` is the event id.\n",
           "## Envelope\n", "| attribute | type | required | meaning |", "|---|---|---|---|"]
    schema = Envelope.model_json_schema()
    for name, prop in schema["properties"].items():
        out.append(f"| `{name}` | {_type(prop)} | {'yes' if name in schema.get('required', []) else 'no'} | "
                   f"{_envelope_meaning(name)} |")
    for service in sorted({s.service for s in CATALOGUE.specs()}):
        out.append(f"\n## {service} — stream `{stream_name(service)}`\n")
        for spec in (s for s in CATALOGUE.specs() if s.service == service):
            model = spec.model
            out.append(f"### {spec.name} v{spec.version}{'' if spec.latest else ' (superseded)'}\n")
            out.append(f"`{spec.type}` — {model.event_summary}\n")
            out.append(f"Subject: `sipas.{service}.{spec.name}.<province|national>`\n")
            sch = model.model_json_schema()
            out.append("| field | type | required | description |")
            out.append("|---|---|---|---|")
            for field, prop in sch["properties"].items():
                desc = (prop.get("description") or "").replace("|", "\\|")
                out.append(f"| `{field}` | {_type(prop, sch)} | {'yes' if field in sch.get('required', []) else 'no'} "
                           f"| {desc} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _type(prop: Any, root: dict[str, Any] | None = None) -> str:
    if not isinstance(prop, dict):
        return "any"
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type(p, root) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}), root)}"
    if prop.get("type") == "object" and "additionalProperties" in prop:
        return f"map of {_type(prop['additionalProperties'], root)}"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    return f"{kind} ({prop['format']})" if "format" in prop else str(kind)


_MEANINGS = {
    "id": "UUIDv7, unique per event; also the JetStream `Nats-Msg-Id`",
    "source": "`/sipas/<service>`: the producing service",
    "type": "`vn.gov.sipas.<service>.<Event>.v<N>`",
    "subject": "the aggregate (stream) id",
    "time": "when the event was recorded, UTC",
    "data": "the event's payload (below)",
    "sequence": "the event's version within its aggregate, from 1",
    "position": "gapless position in the producer's event store (set once sequenced)",
    "correlationid": "the request that started it all; travels through every event it causes",
    "causationid": "the command or event that directly caused this one",
    "actor": "who did it: a user id, `service:<name>` or `system`",
    "province": "the province code it concerns; absent for national events",
}


def _envelope_meaning(name: str) -> str:
    return _MEANINGS.get(name, "")


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": Envelope.model_json_schema(ref_template="#/components/schemas/{model}")}
    for spec in CATALOGUE.specs():
        key = f"{spec.service}.{spec.name}.v{spec.version}"
        schema = spec.model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[key] = schema
        messages[key] = {
            "name": spec.type, "title": f"{spec.name} v{spec.version}", "summary": spec.model.event_summary,
            "contentType": "application/cloudevents+json",
            "payload": {"allOf": [{"$ref": "#/components/schemas/Envelope"},
                                  {"properties": {"type": {"const": spec.type},
                                                  "data": {"$ref": f"#/components/schemas/{key}"}}}]},
        }
        channel = f"{spec.service}.{spec.name}"
        channels.setdefault(channel, {
            "address": f"sipas.{spec.service}.{spec.name}.{{province}}",
            "parameters": {"province": {"description": "two-digit province code, or `national`"}},
            "messages": {},
        })["messages"][key] = {"$ref": f"#/components/messages/{key}"}
        operations[f"publish.{channel}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{spec.service} publishes {spec.name}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "SIPAS events", "version": "1.0.0",
                 "description": "Events of the SIPAS platform, generated from the catalogue in libs/events."},
        "defaultContentType": "application/cloudevents+json",
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def rendered() -> dict[str, str]:
    doc = json.loads(json.dumps(asyncapi()))  # plain types only, for a stable YAML dump
    return {
        "events.md": events_markdown(),
        "asyncapi.yaml": "# Generated from libs/events (the catalogue) by `make docs`. Do not edit by hand.\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120),
    }


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in rendered().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def drift(folder: Path) -> list[Path]:
    return [folder / name for name, text in rendered().items()
            if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != text]
