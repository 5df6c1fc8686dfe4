"""The fuzz's cases, drawn by schemathesis's strategies deterministically, on every core.

Drawing is most of the fuzz's time (an operation whose schema leaves little to break spends seconds failing to
find a case), and the service under test sits idle meanwhile: the operations are shared among worker processes,
each draws its share and hands back each case's parts, and the cases are made again from those parts on the
schema's own operations, in the order one process would have drawn them. The cases are the same either way
(``derandomize``: a strategy's cases depend on it alone).
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import json
import multiprocessing
import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

EXAMPLES = 8
"""Per operation and generation mode: 35 operations of the registry make ~500 requests."""
_FIELDS = ("method", "path_parameters", "headers", "cookies", "query", "media_type", "multipart_content_types")


def drawn(strategy: Any) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=EXAMPLES, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(case: Any) -> None:
        found.append(case)

    try:
        draw()
    except Unsatisfiable:  # nothing can break this operation's schema (say, one free-text path id)
        pass
    return found


def _operations(doc: dict[str, Any]) -> list[Any]:
    return [result.ok() for result in schemathesis.openapi.from_dict(doc).get_all_operations()]


def _parts(case: Any) -> dict[str, Any]:
    parts = {name: getattr(case, name) for name in _FIELDS}
    parts["headers"] = None if case.headers is None else dict(case.headers)
    if not isinstance(case.body, NotSet):  # no body at all, not a null one
        parts["body"] = case.body
    return parts


@functools.lru_cache(maxsize=2)
def _operations_of(doc_text: str) -> list[Any]:
    return _operations(json.loads(doc_text))


def _draw(doc_text: str, k: int) -> list[list[dict[str, Any]]]:
    """The parts of operation ``k``'s cases, mode by mode (in a worker, which parses each schema once)."""
    operation = _operations_of(doc_text)[k]
    return [[_parts(case) for case in drawn(operation.as_strategy(generation_mode=mode))] for mode in GenerationMode]


def pool() -> concurrent.futures.ProcessPoolExecutor:
    """Workers to draw in, one per core (they import schemathesis once: keep them for every schema)."""
    context = multiprocessing.get_context("spawn")  # the caller runs an event loop and threads: never fork it
    return concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 1, mp_context=context)


def cases(doc: dict[str, Any], workers: concurrent.futures.Executor) -> list[Any]:
    """Every operation's cases, valid and invalid, in a fixed order (same cases every run)."""
    operations, text = _operations(doc), json.dumps(doc)
    drawn_parts = list(workers.map(_draw, itertools.repeat(text), range(len(operations))))
    return [operation.Case(**parts) for operation, modes in zip(operations, drawn_parts, strict=True)
            for parts_of_mode in modes for parts in parts_of_mode]
