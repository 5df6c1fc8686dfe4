"""Bulk agency files: every row checked, every fault reported with its row number, nothing half-done.

Pure: the application layer reads the file into rows of text (or dates, from spreadsheets) and
supplies lookups into the registry. ``plan_import`` returns either the commands in an order where
every parent comes before its children, or the complete list of row errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sipas_registry.domain.errors import RegistryError
from sipas_registry.domain.units import LEVELS, RegisterUnit, Unit, nfc, register

REQUIRED = ("code", "name", "level", "province", "valid_from")
OPTIONAL = ("parent_code", "valid_to", "legal_basis")
COLUMNS = REQUIRED + OPTIONAL
# How provinces write the level in their own lists.
LEVEL_ALIASES = {
    "bộ": "ministry", "bo": "ministry", "tỉnh": "province", "tinh": "province", "thành phố": "province",
    "sở": "department", "so": "department", "ban": "department", "ngành": "department",
    "huyện": "district", "huyen": "district", "xã": "commune", "xa": "commune", "phường": "commune",
    "phuong": "commune", "đặc khu": "commune", "trung ương": "central_in_province",
    "trung uong": "central_in_province",
}
HEADER_ALIASES = {"ma": "code", "mã": "code", "ten": "name", "tên": "name", "cap": "level", "cấp": "level",
                  "tinh": "province", "tỉnh": "province", "ma_cha": "parent_code", "mã cha": "parent_code",
                  "tu_ngay": "valid_from", "từ ngày": "valid_from", "den_ngay": "valid_to", "đến ngày": "valid_to"}


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row (the header is row 0), as a spreadsheet user counts below the header
    field: str
    value: str
    reason: str


@dataclass
class ImportPlan:
    commands: list[RegisterUnit] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class Lookups:
    units_with_code: Callable[[str], Sequence[Unit]]  # registry units carrying a code, any period
    province_exists: Callable[[str, dt.date], bool]  # a province unit with this code valid on the date
    in_scope: Callable[[str], bool]  # may the caller manage this province?


def normalise_header(header: Sequence[str]) -> list[str]:
    names = []
    for raw in header:
        key = nfc(str(raw or "")).casefold().strip()
        names.append(HEADER_ALIASES.get(key, key.replace(" ", "_")))
    return names


def missing_columns(header: Sequence[str]) -> list[str]:
    return [c for c in REQUIRED if c not in header]


def parse_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return nfc(str(value))


def plan_import(rows: Sequence[Mapping[str, object]], lookups: Lookups, new_id: Callable[[], str]) -> ImportPlan:
    plan = ImportPlan()
    parsed: dict[int, RegisterUnit] = {}
    parents: dict[int, str] = {}
    for number, raw in enumerate(rows, start=1):
        cmd, parent_code = _parse_row(number, raw, lookups, new_id, plan.errors)
        if cmd is not None:
            parsed[number] = cmd
            if parent_code:
                parents[number] = parent_code
    _check_duplicates(parsed, lookups, plan.errors)
    ordered = _resolve_parents(parsed, parents, lookups, plan.errors)
    if plan.errors:
        plan.errors.sort(key=lambda e: (e.row, e.field))
        return plan
    plan.commands = ordered
    return plan


def _parse_row(number: int, raw: Mapping[str, object], lookups: Lookups, new_id: Callable[[], str],
               errors: list[RowError]) -> tuple[RegisterUnit | None, str]:
    before = len(errors)
    values = {k: _text(raw.get(k)) for k in COLUMNS}
    for name in REQUIRED:
        if not values[name]:
            errors.append(RowError(number, name, "", "required"))
    level = LEVEL_ALIASES.get(values["level"].casefold(), values["level"].casefold())
    if values["level"] and level not in LEVELS:
        errors.append(RowError(number, "level", values["level"], f"unknown level; use one of {', '.join(LEVELS)}"))
    dates: dict[str, dt.date | None] = {"valid_from": None, "valid_to": None}
    for name in dates:
        if raw.get(name) not in (None, ""):
            try:
                dates[name] = parse_date(raw[name])
            except ValueError as exc:
                errors.append(RowError(number, name, values[name], str(exc)))
    province = values["province"].zfill(2) if values["province"].isdigit() else values["province"]
    valid_from = dates["valid_from"]
    if province and valid_from and level != "ministry":
        if not (len(province) == 2 and lookups.province_exists(province, valid_from)):
            errors.append(RowError(number, "province", values["province"], f"no province {province} on {valid_from}"))
        elif not lookups.in_scope(province):
            errors.append(RowError(number, "province", province, "outside the provinces you may manage"))
    if len(errors) > before or valid_from is None:
        return None, ""
    return RegisterUnit(
        agency_id=new_id(), code=values["code"], name=values["name"], level=level,
        parent_id=None, province=None if level == "ministry" else province, valid_from=valid_from,
        valid_to=dates["valid_to"], legal_basis=values["legal_basis"] or None,
    ), values["parent_code"]


def _check_duplicates(parsed: dict[int, RegisterUnit], lookups: Lookups, errors: list[RowError]) -> None:
    first_row: dict[str, list[int]] = {}
    for number in sorted(parsed):
        cmd = parsed[number]
        for other in first_row.get(cmd.code, []):
            o = parsed[other]
            if _overlap(cmd.valid_from, cmd.valid_to, o.valid_from, o.valid_to):
                errors.append(RowError(number, "code", cmd.code, f"duplicate code: also on row {other}"))
                break
        else:
            for unit in lookups.units_with_code(cmd.code):
                if unit.overlaps(cmd.valid_from, cmd.valid_to):
                    errors.append(RowError(number, "code", cmd.code,
                                           f"duplicate code: already registered as {unit.name}"))
                    break
        first_row.setdefault(cmd.code, []).append(number)


def _overlap(a0: dt.date, a1: dt.date | None, b0: dt.date, b1: dt.date | None) -> bool:
    return (a1 is None or b0 <= a1) and (b1 is None or a0 <= b1)


def _resolve_parents(parsed: dict[int, RegisterUnit], parents: dict[int, str], lookups: Lookups,
                     errors: list[RowError]) -> list[RegisterUnit]:
    """Link each row to its parent (in the registry or the file) and order parents first."""
    in_file: dict[str, list[int]] = {}
    for number, cmd in parsed.items():
        in_file.setdefault(cmd.code, []).append(number)
    resolved: dict[int, RegisterUnit] = {}
    parent_unit: dict[int, Unit | None] = {}
    depends: dict[int, int] = {}
    for number, cmd in parsed.items():
        code = parents.get(number)
        if not code:
            parent_unit[number] = None
            resolved[number] = cmd
            continue
        rows = [r for r in in_file.get(code, []) if _valid_on(parsed[r], cmd.valid_from)]
        units = [u for u in lookups.units_with_code(code) if u.valid_on(cmd.valid_from)]
        if rows:
            depends[number] = rows[0]
            p = parsed[rows[0]]
            parent_unit[number] = Unit(p.agency_id, p.code, p.name, p.level, None, p.province, p.valid_from, p.valid_to)
            resolved[number] = _with_parent(cmd, p.agency_id)
        elif units:
            parent_unit[number] = units[0]
            resolved[number] = _with_parent(cmd, units[0].agency_id)
        else:
            errors.append(RowError(number, "parent_code", code, f"unknown parent: no unit {code} valid on "
                                                                  f"{cmd.valid_from} in the registry or this file"))
    for number, cmd in resolved.items():
        try:
            register(cmd, existing=None, parent=parent_unit[number])
        except RegistryError as exc:
            field = exc.field or "code"
            column = {"parent_id": "parent_code"}.get(field, field)
            value = parents.get(number, "") if column == "parent_code" else str(getattr(cmd, field, "") or "")
            errors.append(RowError(number, column, value, str(exc)))
    return _parents_first(resolved, depends, errors)


def _valid_on(cmd: RegisterUnit, day: dt.date) -> bool:
    return cmd.valid_from <= day and (cmd.valid_to is None or day <= cmd.valid_to)


def _with_parent(cmd: RegisterUnit, parent_id: str) -> RegisterUnit:
    from dataclasses import replace

    return replace(cmd, parent_id=parent_id)


def _parents_first(resolved: dict[int, RegisterUnit], depends: dict[int, int],
                   errors: list[RowError]) -> list[RegisterUnit]:
    order: list[RegisterUnit] = []
    state: dict[int, str] = {}

    def visit(number: int, path: tuple[int, ...]) -> None:
        if state.get(number) == "done" or number not in resolved:
            return
        if number in path:
            errors.append(RowError(number, "parent_code", resolved[number].code, "rows are each other's parents"))
            return
        parent = depends.get(number)
        if parent is not None:
            visit(parent, (*path, number))
        state[number] = "done"
        order.append(resolved[number])

    for number in sorted(resolved):
        visit(number, ())
    return order
