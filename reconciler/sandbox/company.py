"""Seeded generator of a realistic Hibob company for the simulator, tests, demo and benchmark.

`generate_company` returns employees in the simulator's flat record format (one dict per employee
keyed by Hibob field id) plus the named lists they reference. Pure and deterministic: same
size, seed and `today` give the same company. Does no I/O and knows nothing of HTTP.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.sandbox.documents import Json, ListItem

T = TypeVar("T")

DOMAIN = "acme.example"

# Every record carries these keys (None when unset), so a requested field that exists in the
# company but is empty for one employee comes back as null rather than being omitted.
STANDARD_FIELDS = (
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.department",
    "work.title",
    "work.site",
    "work.siteId",
    "work.reportsTo",
    "work.manager",
    "work.startDate",
    "work.employeeIdInCompany",
    "internal.status",
    "internal.lifecycleStatus",
    "internal.terminationDate",
    "employee.lastDayOfWork",
)

# Lifecycle machine ids (lower-case, as seen in third-party payloads) and their labels.
LIFECYCLE_LABELS = {
    "employed": "Employed",
    "hired": "Hired",
    "terminated": "Terminated",
    "garden leave": "Garden leave",
    "leave": "Leave",
    "parental leave": "Parental leave",
}

# department -> (share of the workforce, titles used in it)
DEPARTMENTS = {
    "Engineering": (
        30,
        (
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "Engineering Manager",
            "QA Engineer",
            "DevOps Engineer",
        ),
    ),
    "Sales": (16, ("Account Executive", "Sales Development Representative", "Sales Manager")),
    "Customer Success": (8, ("Customer Success Manager", "Onboarding Specialist")),
    "Support": (12, ("Support Agent", "Support Team Lead")),
    "Product": (8, ("Product Manager", "Product Designer", "UX Researcher")),
    "Marketing": (8, ("Marketing Manager", "Content Writer", "Product Marketing Manager")),
    "Finance": (5, ("Accountant", "Financial Analyst", "Controller")),
    "People": (5, ("HR Business Partner", "Recruiter", "People Operations Specialist")),
    "Operations": (5, ("Office Manager", "Operations Analyst")),
    "Legal": (3, ("Legal Counsel", "Paralegal")),
}
CEO_DEPARTMENT, CEO_TITLE = "Management", "Chief Executive Officer"
ARCHIVED_DEPARTMENT, ARCHIVED_TITLE = "Legacy Operations", "Telex Operator"
SITES = {
    "New York": 25,
    "London": 20,
    "Paris": 12,
    "Berlin": 12,
    "Tel Aviv": 8,
    "Remote": 18,
    "Contractors": 5,
}

FIRST_NAMES = (
    "Amy",
    "Zoë",
    "José",
    "Chloé",
    "Björn",
    "Søren",
    "Iñaki",
    "François",
    "Jürgen",
    "Łukasz",
    "Renée",
    "Mohammed",
    "Fatima",
    "Aisha",
    "Priya",
    "Raj",
    "Yuki",
    "Hiroshi",
    "Olivia",
    "Liam",
    "Noah",
    "Emma",
    "Sofía",
    "Mateo",
    "Ana",
    "João",
    "Håkon",
    "Ingrid",
    "Dmitri",
    "Olga",
    "Kwame",
    "Ngozi",
    "Siobhán",
    "Seán",
    "Élodie",
    "Gaël",
    "Annika",
    "Lars",
    "Mia",
    "Lucas",
    "Grace",
    "Ethan",
    "Leïla",
    "Nour",
    "Tomás",
    "Agnieszka",
    "Zoe",
    "David",
    "Sarah",
    "Michael",
)
SURNAMES = (
    "García",
    "Müller",
    "Østergaard",
    "Núñez",
    "Dubois",
    "Lefèvre",
    "Smith",
    "Johnson",
    "O'Brien",
    "Nakamura",
    "Kowalski",
    "Sørensen",
    "Çelik",
    "Schröder",
    "Brontë",
    "Fernández",
    "Jensen",
    "Novák",
    "Dvořák",
    "Rossi",
    "Bianchi",
    "Papadopoulos",
    "Okafor",
    "Mensah",
    "Patel",
    "Sharma",
    "Kim",
    "Nguyễn",
    "Tanaka",
    "Wójcik",
    "Clark",
    "Miles",
    "Brown",
    "Wilson",
    "Taylor",
    "Martin",
    "Bernard",
    "Weiß",
    "Andersson",
    "Lindqvist",
    "Haddad",
    "Cohen",
    "Levi",
    "Costa",
    "Silva",
    "Murphy",
)
# (given name, family name, romanised given, romanised family): displayed family name first.
CHINESE_NAMES = (
    ("伟", "王", "wei", "wang"),
    ("芳", "李", "fang", "li"),
    ("娜", "张", "na", "zhang"),
    ("静", "刘", "jing", "liu"),
    ("强", "陈", "qiang", "chen"),
    ("敏", "杨", "min", "yang"),
    ("磊", "黄", "lei", "huang"),
)

SHARES = {"hired": 0.03, "terminated": 0.08, "garden leave": 0.01, "leave": 0.02}
BAD_RECORD_SHARE = 0.01
_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "æ": "ae",
        "đ": "d",
        "'": "",
        " ": "",
        "-": "",
    }
)


def ascii_fold(name: str) -> str:
    """'Østergaard' -> 'ostergaard': how an email local part is derived from a name."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return decomposed.encode("ascii", "ignore").decode().lower()


_FOLDED = {name: ascii_fold(name) for name in FIRST_NAMES + SURNAMES}
_DEPARTMENT_NAMES = tuple(DEPARTMENTS)
_DEPARTMENT_WEIGHTS = tuple(itertools.accumulate(w for w, _ in DEPARTMENTS.values()))
_SITE_NAMES = tuple(SITES)
_SITE_WEIGHTS = tuple(itertools.accumulate(SITES.values()))


@dataclass
class Company:
    """A generated company: records in simulator format and the named lists they point into."""

    employees: list[Json]
    lists: dict[str, list[ListItem]]
    today: datetime.date
    domain: str = DOMAIN
    company_id: int = 636192
    ceo_id: str | None = None
    bad_records: dict[str, list[str]] = field(default_factory=dict)
    """Kind of bad record ("no_email", "invalid_email", "duplicate_email", "messy_email") -> ids."""


def make_list_item(item_id: str | int, name: str, archived: bool = False) -> ListItem:
    return {"id": item_id, "value": name, "name": name, "archived": archived, "children": []}


def generate_company(size: int, seed: int = 0, today: datetime.date | None = None) -> Company:
    today = today or datetime.date.today()
    rng = random.Random(seed)
    lists = _make_lists(rng)
    by_name = {name: {i["name"]: i["id"] for i in items} for name, items in lists.items()}
    ids = _make_ids(rng, size)
    emails: dict[str, int] = {}
    employees = [_make_employee(rng, i, ids, by_name, emails, today) for i in range(size)]
    _assign_lifecycles(rng, employees, today)
    bad = _spoil_emails(rng, employees)
    return Company(employees, lists, today, ceo_id=ids[0] if ids else None, bad_records=bad)


def _make_lists(rng: random.Random) -> dict[str, list[ListItem]]:
    titles = [CEO_TITLE] + [t for _, ts in DEPARTMENTS.values() for t in ts]
    names = {
        "department": [CEO_DEPARTMENT, *DEPARTMENTS, ARCHIVED_DEPARTMENT],
        "title": [*titles, ARCHIVED_TITLE],
        "site": list(SITES),
    }
    item_ids = iter(rng.sample(range(100_000_000, 999_999_999), 100))
    # Department and title item ids are digit strings, site ids numbers: the docs' and spec's
    # examples show "department": "209192163" but "siteId": 2510068.
    lists = {
        name: [
            make_list_item(next(item_ids) if name == "site" else str(next(item_ids)), label)
            for label in labels
        ]
        for name, labels in names.items()
    }
    lists["department"][-1]["archived"] = lists["title"][-1]["archived"] = True
    lists["lifecycleStatus"] = [make_list_item(k, v) for k, v in LIFECYCLE_LABELS.items()]
    lists["status"] = [make_list_item(s, s) for s in ("Active", "Inactive")]
    return lists


def _make_ids(rng: random.Random, size: int) -> list[str]:
    """19-digit backend ids like Hibob's, strictly increasing so they never collide."""
    current = rng.randrange(3_330_000_000_000_000_000, 3_340_000_000_000_000_000)
    ids = []
    for _ in range(size):
        current += rng.randrange(1, 50_000_000_000)
        ids.append(str(current))
    return ids


def _pick(rng: random.Random, items: Sequence[T], cum_weights: Sequence[float] | None = None) -> T:
    if cum_weights is None:
        return items[int(rng.random() * len(items))]
    return items[bisect.bisect(cum_weights, rng.random() * cum_weights[-1])]


def _pick_name(rng: random.Random) -> tuple[str, str, str, str]:
    if rng.random() < 0.06:
        first, last, ascii_first, ascii_last = _pick(rng, CHINESE_NAMES)
        return first, last, f"{last}{first}", f"{ascii_first}.{ascii_last}"
    first, last = _pick(rng, FIRST_NAMES), _pick(rng, SURNAMES)
    return first, last, f"{first} {last}", f"{_FOLDED[first]}.{_FOLDED[last]}"


def _make_employee(
    rng: random.Random,
    index: int,
    ids: list[str],
    by_name: dict[str, dict[str, str | int]],
    emails: dict[str, int],
    today: datetime.date,
) -> Json:
    first, last, display, local = _pick_name(rng)
    seen = emails[local] = emails.get(local, 0) + 1
    email = f"{local}{seen if seen > 1 else ''}@{DOMAIN}"
    if index == 0:
        department, title, manager = CEO_DEPARTMENT, CEO_TITLE, None
        start = today - datetime.timedelta(days=3000)
    else:
        department = _pick(rng, _DEPARTMENT_NAMES, _DEPARTMENT_WEIGHTS)
        title = _pick(rng, DEPARTMENTS[department][1])
        # Managers always come earlier, so the tree is rooted at the CEO and has no cycles.
        manager = ids[int(rng.random() * max(1, index // 5))]
        start = today - datetime.timedelta(days=1 + int(rng.random() * 3649))
    site = _pick(rng, _SITE_NAMES, _SITE_WEIGHTS)
    return {
        "root.id": ids[index],
        "root.email": email,
        "root.firstName": first,
        "root.surname": last,
        "root.displayName": display,
        "work.department": by_name["department"][department],
        "work.title": by_name["title"][title],
        "work.site": site,
        "work.siteId": by_name["site"][site],
        "work.reportsTo": manager,
        "work.manager": manager,
        "work.startDate": start.isoformat(),
        "work.employeeIdInCompany": index + 1,
        "internal.status": "Active",
        "internal.lifecycleStatus": "employed",
        "internal.terminationDate": None,
        "employee.lastDayOfWork": None,
    }


def _share(size: int, share: float) -> int:
    count = round(size * share)
    return max(1, count) if size >= 50 else count


def _leaf_pool(rng: random.Random, employees: list[Json]) -> list[Json]:
    """Employees nobody reports to (index >= size // 5), shuffled: safe to make special."""
    pool = employees[max(1, len(employees) // 5) :]
    rng.shuffle(pool)
    return pool


def _assign_lifecycles(rng: random.Random, employees: list[Json], today: datetime.date) -> None:
    pool = _leaf_pool(rng, employees)
    day = datetime.timedelta(days=1)
    for status, share in SHARES.items():
        for record in [pool.pop() for _ in range(min(_share(len(employees), share), len(pool)))]:
            record["internal.lifecycleStatus"] = status
            if status == "hired":
                record["work.startDate"] = (today + rng.randrange(1, 60) * day).isoformat()
                record["internal.status"] = "Inactive"
            elif status == "terminated":
                start = datetime.date.fromisoformat(record["work.startDate"])
                end = start + rng.randrange(0, max(1, (today - start).days)) * day
                record["internal.terminationDate"] = end.isoformat()
                record["employee.lastDayOfWork"] = end.isoformat()
                record["internal.status"] = "Inactive"
            elif status == "garden leave":
                last_day = today + rng.randrange(1, 15) * day
                record["employee.lastDayOfWork"] = last_day.isoformat()
                record["internal.terminationDate"] = (
                    last_day + rng.randrange(14, 60) * day
                ).isoformat()
            else:
                record["internal.status"] = rng.choice(("Active", "Inactive"))


def _spoil_emails(rng: random.Random, employees: list[Json]) -> dict[str, list[str]]:
    pool = [r for r in _leaf_pool(rng, employees) if r["internal.lifecycleStatus"] == "employed"]
    count = _share(len(employees), BAD_RECORD_SHARE)
    bad: dict[str, list[str]] = {
        k: [] for k in ("no_email", "invalid_email", "duplicate_email", "messy_email")
    }
    for _ in range(count):
        if len(pool) < 5:
            break
        no_email, invalid, first, second, messy = (pool.pop() for _ in range(5))
        no_email["root.email"] = None
        invalid["root.email"] = "not-an-email"
        second["root.email"] = first["root.email"]
        local, domain = messy["root.email"].split("@")
        messy["root.email"] = f"  {local.title()}@{domain.upper()} "
        bad["no_email"].append(no_email["root.id"])
        bad["invalid_email"].append(invalid["root.id"])
        bad["duplicate_email"] += [first["root.id"], second["root.id"]]
        bad["messy_email"].append(messy["root.id"])
    return bad
