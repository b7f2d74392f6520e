"""Generate the sample HR exports of this folder (fixed seed: the same files on every run).

Writes, in Microsoft's CSV2SCIM column layout (the 24 columns of its ``csv-with-2-records.csv``) plus
``Email``:

- ``hr_employees.csv``: about 300 employees of Contoso: one CEO (empty ManagerID), a manager hierarchy five
  levels deep, about 5% leavers (WorkerStatus ``Inactive``), about 10% contractors, names with diacritics
  ("José Núñez", "Zoë Ødegård") and an apostrophe ("O'Brien"), two different people both called "Ana Silva",
  and privileged IT staff (Department ``IT``, titles ``Systems Administrator`` and ``Security Engineer``).
  Rows are shuffled, so reports often come before their managers.
- ``hr_employees_next_day.csv``: the next day's export: joiners, movers (title, department or manager
  changes, one privileged engineer moving out of IT), leavers (status ``Inactive``), a rehire, and one
  employee missing from the file.

``UserID`` holds HR login names (``jnunez``); user principal names are derived later by the pipeline.

Run ``python dags/data/generate_hr_sample.py [--out DIR]``; import :func:`build_samples` for the data and
the list of day-two changes.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from airflow_provider_entra.provisioning.normalise import CSV2SCIM_COLUMNS

SEED = 20240601
HERE = Path(__file__).resolve().parent

#: Microsoft's CSV2SCIM layout (tests/data/microsoft-sample/README.md) plus Email.
COLUMNS = [*CSV2SCIM_COLUMNS, "Email"]
EMAIL_DOMAIN = "contoso.com"
PRIVILEGED_TITLES = ("Systems Administrator", "Security Engineer")

FIRST_NAMES = [
    "Anaïs", "Björn", "Chloé", "François", "Jürgen", "Łukasz", "Mónica", "Noémie", "Renée", "Siân",
    "Þóra", "Ana", "Ben", "Carla", "David", "Emma", "Farah", "George", "Hana", "Ivan", "Julia", "Kenji",
    "Laila", "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sam", "Tariq", "Uma", "Victor",
    "Wei", "Xavier", "Yara", "Zane", "Inès", "Åsa", "Ngozi",
]  # fmt: skip
LAST_NAMES = [
    "Müller", "Dvořák", "Çelik", "Ångström", "O'Brien", "García", "Smith", "Johnson", "Chen", "Kowalski",
    "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Walker", "Novak", "Haddad", "Ivanova",
    "Larsen", "Moreau", "Kim", "Brown", "Singh", "Costa", "Fischer", "Lefèvre", "Søndergaard", "Brontë",
]  # fmt: skip
PRONOUNS = ["SHE/HER", "HE/HIM", "THEY/THEM"]

LOCATIONS = {
    "Oslo": ("Karl Johans gate 1", "Oslo", "NO", "0154", "+47 22 00 00 00"),
    "Paris": ("12 Rue de Rivoli", "Paris", "FR", "75004", "+33 1 40 00 00 00"),
    "Seattle": ("500 Pine St", "Seattle", "US", "98101", "+1 206 555 0100"),
    "Madrid": ("Calle de Alcalá 50", "Madrid", "ES", "28014", "+34 910 000 000"),
    "Munich": ("Marienplatz 8", "München", "DE", "80331", "+49 89 000000"),
    "Bengaluru": ("MG Road 100", "Bengaluru", "IN", "560001", "+91 80 0000 0000"),
}

# department -> (division, cost center, director title, manager title, individual contributor titles)
DEPARTMENTS: dict[str, tuple[str, str, str, str, list[str]]] = {
    "Sales": (
        "Commercial", "CC1100", "Sales Director", "Sales Manager",
        ["Account Executive", "Sales Representative"],
    ),
    "Engineering": (
        "Product", "CC2100", "Engineering Director", "Engineering Manager",
        ["Software Engineer", "Senior Software Engineer", "QA Engineer"],
    ),
    "Finance": (
        "Corporate", "CC3100", "Finance Director", "Finance Manager",
        ["Accountant", "Financial Analyst"],
    ),
    "People": (
        "Corporate", "CC4100", "HR Director", "HR Manager",
        ["HR Business Partner", "Recruiter"],
    ),
    "IT": (
        "Corporate", "CC5100", "IT Director", "IT Manager",
        ["Systems Administrator", "Security Engineer", "Help Desk Technician", "Network Engineer"],
    ),
    "Marketing": (
        "Commercial", "CC6100", "Marketing Director", "Marketing Manager",
        ["Marketing Specialist", "Content Writer"],
    ),
    "Operations": (
        "Operations", "CC7100", "Operations Director", "Operations Manager",
        ["Operations Analyst", "Logistics Coordinator"],
    ),
}  # fmt: skip

_FOLD = str.maketrans(
    {"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "Þ": "Th", "þ": "th", "æ": "ae", "ß": "ss", "đ": "d"}
)


def ascii_fold(text: str) -> str:
    """``"Zoë Ødegård"`` -> ``"Zoe Odegard"``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _slug(text: str) -> str:
    return "".join(c for c in ascii_fold(text).lower() if c.isalnum())


class _Random:
    """Only ``random.Random.random()`` is guaranteed to give the same sequence on every Python version."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def below(self, n: int) -> int:
        return min(int(self._rng.random() * n), n - 1)

    def pick(self, items: list) -> object:
        return items[self.below(len(items))]

    def chance(self, p: float) -> bool:
        return self._rng.random() < p

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


@dataclass
class Samples:
    """Both exports, as lists of rows (dicts keyed by :data:`COLUMNS`), and what changed on day two."""

    day1: list[dict[str, str]]
    day2: list[dict[str, str]]
    changes: dict[str, list[str]] = field(default_factory=dict)


class _Company:
    def __init__(self, rng: _Random) -> None:
        self.rng = rng
        self.rows: list[dict[str, str]] = []
        self._ids: set[str] = set()
        self._logins: set[str] = set()
        self._emails: set[str] = set()

    def new_id(self) -> str:
        while True:
            worker_id = str(100000 + self.rng.below(900000))
            if worker_id not in self._ids:
                self._ids.add(worker_id)
                return worker_id

    def _unique(self, base: str, taken: set[str]) -> str:
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}{n}"
        taken.add(candidate)
        return candidate

    def person(
        self,
        *,
        manager: str,
        department: str,
        title: str,
        first: str | None = None,
        last: str | None = None,
        worker_type: str = "Employee",
        hired_after: date = date(2005, 1, 1),
    ) -> dict[str, str]:
        rng = self.rng
        first = first or str(rng.pick(FIRST_NAMES))
        last = last or str(rng.pick(LAST_NAMES))
        division, cost_center, *_ = DEPARTMENTS.get(department, ("Executive", "CC0100", "", "", []))
        location = str(rng.pick(list(LOCATIONS)))
        street, city, country, zipcode, phone = LOCATIONS[location]
        login = self._unique(_slug(first)[:1] + _slug(last), self._logins)
        email_local = self._unique(f"{_slug(first)}.{_slug(last)}", self._emails)
        hired = hired_after + timedelta(days=rng.below(max(1, (date(2024, 12, 31) - hired_after).days)))
        row = {
            "WorkerID": self.new_id(),
            "WorkerStatus": "Active",
            "WorkerType": worker_type,
            "UserID": login,
            "FirstName": first,
            "LastName": last,
            "FullName": f"{first} {last}",
            "GenderPronoun": str(rng.pick(PRONOUNS)),
            "ManagerID": manager,
            "HireDate": hired.isoformat(),
            "OnLeave": "True" if rng.chance(0.03) else "False",
            "Department": department,
            "Division": division,
            "CostCenter": cost_center,
            "Company": "Contoso",
            "Location": location,
            "JobTitle": title,
            "StreetAddress": street if rng.chance(0.9) else "",
            "City": city,
            "CountryCode": country,
            "OfficePhone": phone[:-2] + f"{rng.below(100):02d}",
            "Custom01": f"B{1000 + rng.below(9000)}",
            "Custom02": str(rng.pick(["Hybrid", "Remote", "Onsite", ""])),
            "ZipCode": zipcode,
            "Email": f"{email_local}@{EMAIL_DOMAIN}",
        }
        self.rows.append(row)
        return row


def _day_one(rng: _Random) -> _Company:
    company = _Company(rng)
    ceo = company.person(
        manager="",
        department="Executive",
        title="Chief Executive Officer",
        first="Zoë",
        last="Ødegård",
        hired_after=date(2005, 1, 1),
    )
    for department, (_, _, director_title, manager_title, titles) in DEPARTMENTS.items():
        vp = company.person(manager=ceo["WorkerID"], department=department, title=f"VP {department}")
        for _ in range(2):
            director = company.person(manager=vp["WorkerID"], department=department, title=director_title)
            for _ in range(2 + rng.below(2)):
                manager = company.person(
                    manager=director["WorkerID"], department=department, title=manager_title
                )
                for _ in range(5 + rng.below(4)):
                    company.person(
                        manager=manager["WorkerID"],
                        department=department,
                        title=str(rng.pick(titles)),
                        worker_type="Contractor" if rng.chance(0.13) else "Employee",
                    )
    # people the tests and the demo rely on
    managers = [r for r in company.rows if r["JobTitle"].endswith("Manager") and r["Department"] == "Sales"]
    company.person(
        manager=managers[0]["WorkerID"],
        department="Sales",
        title="Account Executive",
        first="José",
        last="Núñez",
    )
    company.person(
        manager=managers[1]["WorkerID"],
        department="Sales",
        title="Sales Representative",
        first="Ana",
        last="Silva",
    )
    company.person(
        manager=managers[2]["WorkerID"],
        department="Marketing",
        title="Content Writer",
        first="Ana",
        last="Silva",
    )
    leaves = [
        r
        for r in company.rows
        if not r["JobTitle"].endswith(("Manager", "Director", "Officer"))
        and not r["JobTitle"].startswith("VP")
        and r["FirstName"] not in ("José", "Ana")
    ]
    rng.shuffle(leaves)
    for row in leaves[: round(0.05 * len(company.rows))]:
        row["WorkerStatus"] = "Inactive"
    # a privileged leaver: the admin-accounts DAG disables their admin account
    admins = [
        r for r in company.rows if r["JobTitle"] == "Systems Administrator" and r["WorkerStatus"] == "Active"
    ]
    admins[0]["WorkerStatus"] = "Inactive"
    return company


def _day_two(day1: _Company, rng: _Random) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    rows = [dict(r) for r in day1.rows]
    by_id = {r["WorkerID"]: r for r in rows}
    active_ics = [
        r
        for r in rows
        if r["WorkerStatus"] == "Active"
        and r["Department"] != "Executive"
        and not r["JobTitle"].endswith(("Manager", "Director"))
        and not r["JobTitle"].startswith("VP")
        and r["FirstName"] not in ("José", "Ana")
    ]
    rng.shuffle(active_ics)
    managers = [r for r in rows if r["JobTitle"].endswith("Manager") and r["WorkerStatus"] == "Active"]
    changes: dict[str, list[str]] = {"joiners": [], "movers": [], "leavers": [], "rehires": [], "missing": []}

    # joiners, created through the same company so ids, logins and emails stay unique
    it_manager = next(r for r in managers if r["Department"] == "IT")
    sales_manager = next(r for r in managers if r["Department"] == "Sales")
    day1.rows = []
    joiners = [
        day1.person(manager=it_manager["WorkerID"], department="IT", title="Security Engineer"),
        day1.person(
            manager=sales_manager["WorkerID"],
            department="Sales",
            title="Account Executive",
            first="Renée",
            last="Brontë",
        ),
        day1.person(
            manager=sales_manager["WorkerID"],
            department="Sales",
            title="Sales Representative",
            worker_type="Contractor",
        ),
    ]
    for row in joiners:
        row["HireDate"] = "2025-02-03"
    rows.extend(joiners)
    changes["joiners"] = [r["WorkerID"] for r in joiners]

    # movers: a promotion, a change of department, a change of manager, a privileged engineer leaving IT
    promoted, transferred, reassigned = active_ics[0], active_ics[1], active_ics[2]
    promoted["JobTitle"] = "Senior " + promoted["JobTitle"].removeprefix("Senior ")
    target = next(m for m in managers if m["Department"] != transferred["Department"])
    transferred.update(
        Department=target["Department"],
        Division=DEPARTMENTS[target["Department"]][0],
        CostCenter=DEPARTMENTS[target["Department"]][1],
        ManagerID=target["WorkerID"],
        JobTitle=DEPARTMENTS[target["Department"]][4][0],
    )
    other = next(
        m
        for m in managers
        if m["Department"] == reassigned["Department"] and m["WorkerID"] != reassigned["ManagerID"]
    )
    reassigned["ManagerID"] = other["WorkerID"]
    privileged = next(r for r in active_ics[3:] if r["JobTitle"] in PRIVILEGED_TITLES)
    finance = next(m for m in managers if m["Department"] == "Finance")
    privileged.update(
        Department="Finance",
        Division="Corporate",
        CostCenter="CC3100",
        ManagerID=finance["WorkerID"],
        JobTitle="Financial Analyst",
    )
    changes["movers"] = [r["WorkerID"] for r in (promoted, transferred, reassigned, privileged)]

    # leavers, a rehire and someone missing from the file (a leaver the planner must infer)
    leavers = [r for r in active_ics[4:] if r["WorkerID"] != privileged["WorkerID"]][:3]
    for row in leavers:
        row["WorkerStatus"] = "Inactive"
    changes["leavers"] = [r["WorkerID"] for r in leavers]
    rehire = next(
        r
        for r in rows
        if r["WorkerStatus"] == "Inactive"
        and r["WorkerID"] not in changes["leavers"]
        and r["JobTitle"] not in PRIVILEGED_TITLES
    )
    rehire["WorkerStatus"] = "Active"
    rehire["HireDate"] = "2025-02-03"
    changes["rehires"] = [rehire["WorkerID"]]
    missing = active_ics[10]
    changes["missing"] = [missing["WorkerID"]]
    rows = [r for r in rows if r["WorkerID"] != missing["WorkerID"]]
    assert all(m in by_id or m == "" or m in changes["joiners"] for m in (r["ManagerID"] for r in rows))
    return rows, changes


def build_samples(seed: int = SEED) -> Samples:
    """Build both days' rows (shuffled) and the day-two changes, deterministically from ``seed``."""
    rng = _Random(seed)
    company = _day_one(rng)
    day1 = [dict(r) for r in company.rows]
    day2, changes = _day_two(company, rng)
    rng.shuffle(day1)
    order = {r["WorkerID"]: i for i, r in enumerate(day1)}
    day2.sort(key=lambda r: order.get(r["WorkerID"], len(order)))
    return Samples(day1, day2, changes)


def to_csv(rows: list[dict[str, str]]) -> str:
    """The rows as CSV text in :data:`COLUMNS` order (UTF-8, ``\\n`` line ends)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_samples(out_dir: Path = HERE, seed: int = SEED) -> Samples:
    """Write ``hr_employees.csv`` and ``hr_employees_next_day.csv`` into ``out_dir``."""
    samples = build_samples(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "hr_employees.csv").write_text(to_csv(samples.day1), encoding="utf-8")
    (out_dir / "hr_employees_next_day.csv").write_text(to_csv(samples.day2), encoding="utf-8")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    samples = write_samples(args.out, args.seed)
    print(f"{len(samples.day1)} employees on day one, {len(samples.day2)} on day two, written to {args.out}")
    for kind, ids in samples.changes.items():
        print(f"  {kind}: {', '.join(ids)}")


if __name__ == "__main__":
    main()
