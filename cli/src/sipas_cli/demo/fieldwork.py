"""Step 3, fieldwork: ballots come back through every channel, and some must be turned away.

- **online**: the respondent types the code from the sheet into the survey (``POST /v1/submissions``,
  no account: the code is the credential);
- **paper**: two data-entry clerks key each paper ballot blind on the clerk pages (``/clerk``); a
  disagreement waits for a third person at ``/clerk/disputes``;
- **import**: the postal service's enumerators' keyed batches, one CSV per province
  (``/v1/campaigns/{id}/ballot-imports``), with the enumerator of each ballot in ``entered_by``;
- **kiosk**: the one-stop shops' per-dossier ratings (``/v1/campaigns/{id}/online-ratings``).

Planted among them, and expected back with their reasons: a duplicate, an answer off the scale, too few
answers, a mistyped code, a repeated row, a ballot with a blank section, kiosk rows with a date in the
future or no agency. One enumerator of the first province fabricates his ballots.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import httpx

from sipas_cli.demo.answers import Ballot, Respondents
from sipas_cli.demo.client import ADJUDICATOR, CLERKS, KIOSKS, ORGANISER, VNPOST, Api, DemoError, Person, wait_until
from sipas_cli.demo.model import Agency, Rejection, Round
from sipas_cli.demo.sheets import codes_on_sheets
from sipas_kit import csrf

RESULT = re.compile(r'id="result">(.*?)</p>', re.S)
UNUSED_CODE = "0000-0000-000"  # well formed (its check character holds) but never issued


@dataclass
class Assignment:
    online: list[tuple[Agency, str]] = field(default_factory=list)
    paper: list[tuple[Agency, str]] = field(default_factory=list)
    imported: list[tuple[Agency, str]] = field(default_factory=list)
    silent: list[tuple[Agency, str]] = field(default_factory=list)


def collect_codes(api: Api, rnd: Round, tick: Callable[[], None]) -> int:
    """Wait until a code was issued to every sampled unit, then read them off the printable sheets."""
    expected = sum(d.selected for d in rnd.draws)
    path = f"/v1/campaigns/{rnd.campaign_id}"
    wait_until(lambda: api.get("ballots", f"{path}/progress", ORGANISER)["issued"] >= expected,
               f"ballots issuing {expected} codes")
    for agency in rnd.targets:
        pdf = api.call("GET", "ballots", f"{path}/ballot-sheets.pdf", ORGANISER,
                       params={"agency_code": agency.code}).content
        rnd.codes[agency.code] = [code for code, on in codes_on_sheets(pdf) if on == agency.code]
        tick()
    read = sum(len(c) for c in rnd.codes.values())
    if read != expected:
        raise DemoError(f"{read} codes read off the ballot sheets, {expected} units sampled")
    return read


def assign(rnd: Round, rng: random.Random) -> Assignment:
    """Per agency: 8% never answer, 45% answer online, 25% on paper, the rest through the postal
    service's enumerators."""
    plan = Assignment()
    for agency in rnd.targets:
        codes = [(agency, c) for c in rnd.codes[agency.code]]
        rng.shuffle(codes)
        n = len(codes)
        cuts = [round(n * 0.08), round(n * 0.53), round(n * 0.78)]
        plan.silent += codes[:cuts[0]]
        plan.online += codes[cuts[0]:cuts[1]]
        plan.paper += codes[cuts[1]:cuts[2]]
        plan.imported += codes[cuts[2]:]
    rnd.handed_out = {"online": len(plan.online), "paper": len(plan.paper), "import": len(plan.imported),
                      "none": len(plan.silent)}
    return plan


def _parallel(jobs: Iterable[Callable[[], None]], workers: int) -> None:
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


# ---- online -----------------------------------------------------------------------------------------

def _online(api: Api, rnd: Round, code: str, ballot: Ballot) -> tuple[str | None, str | None]:
    """(reason if rejected, ballot id if accepted): exactly what the respondent's page posts."""
    r = api.call("POST", "ballots", "/v1/submissions", None, ok=(201, 422), json={
        "code": code, "campaign_id": rnd.campaign_id, "answers": ballot.answers, "channel": "online",
        "expectations": ballot.expectations, "not_applicable_factors": ballot.not_applicable,
        "entry_seconds": ballot.seconds})
    body = r.json()
    if r.status_code == 201:
        return None, body["ballot_id"]
    if "reason" not in body:
        raise DemoError(f"online submission refused without a ballot reason: {body}")
    return body["reason"], None


def mistyped(printed: str) -> str:
    """The printed code with two neighbouring, different characters swapped: the check character catches it."""
    plain = printed.replace("-", "")
    i = next(i for i in range(len(plain) - 1) if plain[i] != plain[i + 1])
    swapped = plain[:i] + plain[i + 1] + plain[i] + plain[i + 2:]
    return "-".join(swapped[j:j + 4] for j in range(0, len(swapped), 4))


def online(api: Api, rnd: Round, people: Respondents, rng: random.Random, items: list[tuple[Agency, str]],
           workers: int, tick: Callable[[], None]) -> None:
    ledger = rnd.ledger
    planted, regular = items[:3], items[3:]
    ballots = [(code.lower() if rng.random() < 0.2 else code, people.answer(rng, a.province, a.code))
               for a, code in regular]

    def job(code: str, ballot: Ballot) -> Callable[[], None]:
        def run() -> None:
            reason, _ = _online(api, rnd, code, ballot)
            ledger.outcome("online", reason)
            if reason is not None:
                raise DemoError(f"an ordinary online ballot was rejected: {reason}")
            tick()
        return run

    _parallel([job(c, b) for c, b in ballots], workers)
    (a1, off), (a2, typo), (a3, few) = planted
    # An answer off the scale (a 6, from an older form), corrected and sent again; then sent a third time.
    first = people.answer(rng, a1.province, a1.code)
    bad = Ballot(first.answers | {next(iter(first.answers)): 6}, first.expectations, first.not_applicable)
    _plant(rnd, "online", "off_scale", _online(api, rnd, off, bad)[0], f"{off}: an answer of 6")
    ledger.outcome("online", _online(api, rnd, off, first)[0])
    _plant(rnd, "online", "used_code", _online(api, rnd, off, first)[0], f"{off}: sent twice")
    # A mistyped code (two characters swapped), then typed right.
    answers = people.answer(rng, a2.province, a2.code)
    _plant(rnd, "online", "unknown_code", _online(api, rnd, mistyped(typo), answers)[0], f"{mistyped(typo)}: typo")
    ledger.outcome("online", _online(api, rnd, typo, answers)[0])
    # Eight criteria answered of 22: the respondent gives up; the unit counts as not answering.
    partial = people.answer(rng, a3.province, a3.code)
    short = {k: (v if i < 8 else None) for i, (k, v) in enumerate(partial.answers.items())}
    _plant(rnd, "online", "too_few_answers", _online(api, rnd, few, Ballot(short))[0], f"{few}: 8 of 22 answered")
    tick()


def _plant(rnd: Round, channel: str, expected: str, actual: str | None, what: str) -> None:
    rnd.ledger.outcome(channel, actual)
    rnd.ledger.planted.append(Rejection(channel, expected, actual or "accepted", what))


# ---- paper: double entry on the clerk pages ---------------------------------------------------------

class ClerkDesk:
    """A clerk's browser session: signed in once (the cookie), then the keying form, sent back with the
    CSRF token the page carries (each answer is the form again, with the token to send next)."""

    def __init__(self, api: Api, who: Person, campaign_id: str) -> None:
        self.who, self.campaign_id = who, campaign_id
        self.http = httpx.Client(base_url=api.urls["ballots"], timeout=120)
        signed_in = self.http.get("/clerk/login", params={"token": api.token(who)})
        if signed_in.status_code != 303:
            raise DemoError(f"{who.subject} could not sign in to the clerk pages: {signed_in.status_code}")
        form = self.http.get("/clerk", params={"campaign_id": campaign_id})
        if f'value="{campaign_id}"' not in form.text:
            raise DemoError(f"the keying form of {who.subject} does not offer campaign {campaign_id}")
        self.token = _token(form)

    def key(self, code: str, ballot: Ballot, criteria: list[str], seconds: float) -> str:
        fields = [("campaign_id", self.campaign_id), ("csrf_token", self.token), ("code", code),
                  ("entry_seconds", f"{seconds:.1f}"), ("e", " ".join(ballot.expectations))]
        fields += [(f"q_{item}", str(ballot.answers.get(item) or 0)) for item in criteria]
        fields += [("na_factor", f) for f in ballot.not_applicable]
        r = self.http.post("/clerk/key", content=_form(fields),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.token = csrf.token_in(r.text) or self.token
        return _message(r)

    def close(self) -> None:
        self.http.close()


def _form(fields: list[tuple[str, str]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def _token(page: httpx.Response) -> str:
    """The CSRF token of the page's form, as a browser would send it back."""
    token = csrf.token_in(page.text)
    if token is None:
        raise DemoError(f"the page {page.url.path} answered {page.status_code} without a form to send")
    return token


def _message(r: httpx.Response) -> str:
    found = RESULT.search(r.text)
    if found is None:
        raise DemoError(f"the clerk page answered {r.status_code} without a result line")
    return unescape(found.group(1)).strip()


def paper_reason(message: str) -> str | None:
    """The outcome the clerk page shows after the second keying: None if accepted, else the reason."""
    if "đã được chấp nhận" in message:
        return None
    for pattern, reason in (("criteria answered", "too_few_answers"), ("applies but none", "too_few_answers"),
                            ("off the scale", "off_scale"), ("already used", "used_code"),
                            ("no ballot was issued", "unknown_code"), ("not a ballot code", "unknown_code")):
        if pattern in message:
            return reason
    return "rejected"


def paper(api: Api, rnd: Round, people: Respondents, rng: random.Random, items: list[tuple[Agency, str]],
          workers: int, tick: Callable[[], None]) -> None:
    criteria = people.instrument.criteria
    desks = [ClerkDesk(api, who, rnd.campaign_id) for who in CLERKS]
    for who in CLERKS:
        rnd.enumerators[who.subject] = "paper"
    try:
        planted, regular = items[:2], items[2:]
        jobs = []
        for i, (agency, code) in enumerate(regular):
            ballot = people.answer(rng, agency.province, agency.code, overall=False)
            first, second = desks[i % 3], desks[(i + 1) % 3]
            seconds = (rng.uniform(35, 75), rng.uniform(35, 75))
            jobs.append(_keying(rnd, first, second, code, ballot, criteria, seconds, tick))
        _parallel(jobs, workers)
        (a1, disputed), (a2, blank) = planted
        # The second clerk misreads one answer: the ballot waits for a third person, who reads the paper.
        truth = people.answer(rng, a1.province, a1.code, overall=False)
        item = next(k for k in criteria if truth.answers.get(k) is not None)
        misread = Ballot(truth.answers | {item: 1 if truth.answers[item] != 1 else 2}, truth.expectations,
                         truth.not_applicable)
        desks[0].key(disputed, truth, criteria, 52.0)
        if "đối chiếu" not in desks[1].key(disputed, misread, criteria, 47.0):
            raise DemoError(f"two different keyings of {disputed} were not sent to adjudication")
        rnd.ledger.outcome("paper", _adjudicate(api, disputed, f"answers.{item}", truth.answers[item]))
        rnd.ledger.disputes_settled += 1
        # Section 3 left blank on the paper (and the section not marked not applicable): both clerks agree.
        gap = people.answer(rng, a2.province, a2.code, overall=False)
        gap = Ballot({k: (None if k.startswith("3.") else v) for k, v in gap.answers.items()}, gap.expectations,
                     gap.not_applicable)
        desks[1].key(blank, gap, criteria, 40.0)
        _plant(rnd, "paper", "too_few_answers", paper_reason(desks[2].key(blank, gap, criteria, 44.0)),
               f"{blank}: section 3 blank")
        tick()
    finally:
        for desk in desks:
            desk.close()


def _keying(rnd: Round, first: ClerkDesk, second: ClerkDesk, code: str, ballot: Ballot, criteria: list[str],
            seconds: tuple[float, float], tick: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        first.key(code, ballot, criteria, seconds[0])
        reason = paper_reason(second.key(code, ballot, criteria, seconds[1]))
        rnd.ledger.outcome("paper", reason)
        if reason is not None:
            raise DemoError(f"an ordinary paper ballot {code} was not accepted: {reason}")
        tick()
    return run


def _adjudicate(api: Api, code: str, field_name: str, value: Any) -> str | None:
    canonical = code.replace("-", "").upper()
    with httpx.Client(base_url=api.urls["ballots"], timeout=120) as desk:
        desk.get("/clerk/login", params={"token": api.token(ADJUDICATOR)})
        shown = desk.get(f"/clerk/disputes/{canonical}")
        if field_name not in shown.text:
            raise DemoError(f"the dispute page of {code} does not show {field_name}")
        settled = desk.post(f"/clerk/disputes/{canonical}",
                            content=_form([("csrf_token", _token(shown)), (field_name, str(value))]),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    return paper_reason(_message(settled))


# ---- import: the enumerators' batches ----------------------------------------------------------------

def enumerator(province: str, n: int) -> str:
    return f"dtv.{province}.{n}@vnpost.vn"


def imports(api: Api, rnd: Round, people: Respondents, rng: random.Random, items: list[tuple[Agency, str]],
            tick: Callable[[], None]) -> None:
    criteria = people.instrument.criteria
    rnd.fabricator = enumerator(rnd.provinces[0], 2)
    for province in rnd.provinces:
        mine = [(a, c) for a, c in items if a.province == province]
        rows: list[dict[str, str]] = []
        planted: dict[int, tuple[str, str]] = {}   # row index -> (expected reason, what)
        for i, (agency, code) in enumerate(mine):
            who = enumerator(province, 1 + i % 2)
            rnd.enumerators[who] = "import"
            ballot = people.fabricated(rng) if who == rnd.fabricator else \
                people.answer(rng, province, agency.code, overall=False)
            row = _row(code, ballot, criteria, who)
            if province == rnd.provinces[0] and i == 0:   # keyed with a 7, caught by the report, keyed again
                planted[len(rows)] = ("off_scale", f"{code}: a 7 keyed")
                rows.append(row | {criteria[0]: "7"})
            rows.append(row)
            if province == rnd.provinces[0] and i == 1:   # the same row twice in the batch
                planted[len(rows)] = ("used_code", f"{code}: row repeated")
                rows.append(dict(row))
        if province == rnd.provinces[0]:
            planted[len(rows)] = ("unknown_code", f"{UNUSED_CODE}: never issued")
            rows.append(_row(UNUSED_CODE, people.answer(rng, province, mine[0][0].code, overall=False), criteria,
                             enumerator(province, 1)))
        if not rows:
            continue
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["code", *criteria, "expectations", "not_applicable_factors",
                                                 "entered_by"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        report = api.call("POST", "ballots", f"/v1/campaigns/{rnd.campaign_id}/ballot-imports", VNPOST,
                          params={"filename": f"phieu-{province}.csv"}, content=out.getvalue().encode("utf-8"),
                          headers={"Content-Type": "text/csv"}).json()["report"]
        for index, line in enumerate(report):
            reason = line["reason"] or None
            if index in planted:
                _plant(rnd, "import", planted[index][0], reason, planted[index][1])
                continue
            rnd.ledger.outcome("import", reason)
            if reason is not None:
                raise DemoError(f"an ordinary imported ballot (line {line['line']}) was rejected: {reason}")
        tick()


def _row(code: str, ballot: Ballot, criteria: list[str], who: str) -> dict[str, str]:
    return {"code": code, **{c: "" if ballot.answers.get(c) is None else str(ballot.answers[c]) for c in criteria},
            "expectations": " ".join(ballot.expectations), "not_applicable_factors": " ".join(ballot.not_applicable),
            "entered_by": who}


# ---- kiosk: per-dossier ratings (online-766) ----------------------------------------------------------

def kiosks(api: Api, rnd: Round, people: Respondents, rng: random.Random, per_agency: int,
           tick: Callable[[], None]) -> None:
    recorded = repeats = 0
    for province in rnd.provinces:
        batch: list[dict[str, Any]] = []
        for agency in (a for a in rnd.targets if a.province == province):
            bad = 0.2 - 0.08 * (people.province_effect(province) + people.agency_effect(agency.code))
            for i in range(per_agency):
                unsatisfied = rng.random() < bad
                batch.append({"source_system": f"kiosk-{province}", "dossier_id": f"{rnd.tag}-K-{agency.code}-{i:04d}",
                              "agency_code": agency.code,
                              "completed_on": (rnd.today - dt.timedelta(days=rng.randrange(20))).isoformat(),
                              "rated_unsatisfied": unsatisfied, "complained": unsatisfied and rng.random() < 0.2,
                              "overdue": rng.random() < 0.04})
        planted = []
        if province == rnd.provinces[0]:
            planted = [("completed_on", "a rating dated tomorrow"), ("agency_code", "a rating with no agency")]
            batch.append(dict(batch[0], dossier_id=f"{rnd.tag}-K-future",
                              completed_on=(rnd.today + dt.timedelta(days=1)).isoformat()))
            batch.append({k: v for k, v in batch[1].items() if k != "agency_code"} | {"dossier_id": f"{rnd.tag}-K-x"})
        result = api.post("ballots", f"/v1/campaigns/{rnd.campaign_id}/online-ratings", KIOSKS, {"items": batch},
                          ok=(200, 207), headers={"Idempotency-Key": f"demo-{rnd.tag}-kiosk-{province}"})
        errors = {e["field"] for e in result["errors"]}
        rnd.ledger.submitted["kiosk"] += len(batch)
        rnd.ledger.accepted["kiosk"] += result["recorded"]
        for e in result["errors"]:
            rnd.ledger.rejected["kiosk"][f"invalid {e['field']}"] += 1
        for fld, what in planted:
            rnd.ledger.planted.append(Rejection("kiosk", f"invalid {fld}",
                                                f"invalid {fld}" if fld in errors else "accepted", what))
        recorded += result["recorded"]
        # The kiosk system retries the same batch (a lost answer): nothing is recorded twice.
        again = api.post("ballots", f"/v1/campaigns/{rnd.campaign_id}/online-ratings", KIOSKS, {"items": batch},
                         ok=(200, 207))
        if again["recorded"]:
            raise DemoError(f"a retried kiosk batch recorded {again['recorded']} ratings again")
        repeats += again["repeats"]
        tick()
    rnd.ratings = {"recorded": recorded, "repeats_ignored": repeats}
