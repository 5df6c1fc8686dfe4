"""Architecture rules a test can prove: pure domains, no service importing another."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("registry", "sampling", "ballots", "scoring", "publishing")
IO_LIBRARIES = ("sqlalchemy", "asyncpg", "nats", "fastapi", "starlette", "structlog", "httpx")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_layers_do_no_io():
    checked = 0
    for service in SERVICES:
        for path in (ROOT / f"services/{service}/src/sipas_{service}/domain").rglob("*.py"):
            bad = {m for m in imports(path) if m.split(".")[0] in IO_LIBRARIES}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
            checked += 1
    assert checked >= 2


def test_no_service_imports_another_service():
    for service in SERVICES:
        others = {f"sipas_{o}" for o in SERVICES if o != service}
        for path in (ROOT / f"services/{service}/src").rglob("*.py"):
            bad = {m for m in imports(path) if m.split(".")[0] in others}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
