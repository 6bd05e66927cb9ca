import datetime
import re
import time
from collections import Counter

import pytest

from reconciler.sandbox.company import DOMAIN, generate_company

TODAY = datetime.date(2026, 3, 16)


@pytest.fixture(scope="module")
def company():
    return generate_company(1000, seed=11, today=TODAY)


def _by_status(company, status):
    return [e for e in company.employees if e["internal.lifecycleStatus"] == status]


def test_same_seed_size_and_today_give_identical_company():
    first = generate_company(300, seed=5, today=TODAY)
    second = generate_company(300, seed=5, today=TODAY)
    assert first == second


def test_a_different_seed_gives_a_different_company():
    first = generate_company(300, seed=5, today=TODAY)
    other = generate_company(300, seed=6, today=TODAY)
    assert [e["root.id"] for e in first.employees] != [e["root.id"] for e in other.employees]


def test_size_zero_gives_named_lists_and_no_employees():
    empty = generate_company(0, today=TODAY)
    assert empty.employees == []
    assert set(empty.lists) == {"department", "title", "site", "lifecycleStatus", "status"}


def test_ids_are_unique_nineteen_digit_strings(company):
    ids = [e["root.id"] for e in company.employees]
    assert len(set(ids)) == len(ids) == 1000
    assert all(re.fullmatch(r"\d{19}", i) for i in ids)


def test_every_employee_reports_to_someone_earlier_and_the_ceo_to_nobody(company):
    seen = set()
    for index, employee in enumerate(company.employees):
        manager = employee["work.reportsTo"]
        assert employee["work.manager"] == manager
        assert (manager is None) == (index == 0)
        assert manager is None or manager in seen
        seen.add(employee["root.id"])
    assert company.ceo_id == company.employees[0]["root.id"]


def test_lifecycle_statuses_come_in_realistic_shares(company):
    counts = Counter(e["internal.lifecycleStatus"] for e in company.employees)
    assert counts == {
        "employed": 860,
        "terminated": 80,
        "hired": 30,
        "leave": 20,
        "garden leave": 10,
    }


def test_lifecycle_dates_and_access_status_fit_each_status(company):
    today = TODAY.isoformat()
    for e in _by_status(company, "hired"):
        assert e["work.startDate"] > today and e["internal.status"] == "Inactive"
    for e in _by_status(company, "terminated"):
        assert e["internal.terminationDate"] < today and e["internal.status"] == "Inactive"
    for e in _by_status(company, "garden leave"):
        assert e["internal.status"] == "Active"
        assert today < e["employee.lastDayOfWork"] < e["internal.terminationDate"]
    for e in _by_status(company, "employed"):
        assert e["work.startDate"] <= today and e["internal.status"] == "Active"
        assert e["internal.terminationDate"] is None
    assert {e["internal.status"] for e in _by_status(company, "leave")} == {"Active", "Inactive"}


def test_bad_email_records_are_present_at_fifty_employees():
    small = generate_company(50, seed=1, today=TODAY)
    emails = [e["root.email"] for e in small.employees]
    assert None in emails
    assert "not-an-email" in emails
    assert any(email and email != email.strip().lower() for email in emails)
    good = [email for email in emails if email and "@" in email]
    assert len(good) - len(set(good)) == 1
    assert {k: len(v) for k, v in small.bad_records.items()} == {
        "no_email": 1,
        "invalid_email": 1,
        "duplicate_email": 2,
        "messy_email": 1,
    }


def test_good_emails_are_unique_lower_case_first_dot_last_on_the_company_domain(company):
    bad = {i for ids in company.bad_records.values() for i in ids}
    emails = [e["root.email"] for e in company.employees if e["root.id"] not in bad]
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(rf"[a-z]+\.[a-z]+\d*@{re.escape(DOMAIN)}", m) for m in emails)


def test_names_include_accents_and_chinese_characters(company):
    names = "".join(e["root.displayName"] for e in company.employees)
    assert any(ch in names for ch in "éñøü")
    assert re.search(r"[\u4e00-\u9fff]", names)


def test_every_list_reference_resolves_to_an_item_with_a_digit_id(company):
    for field, list_name in (
        ("work.department", "department"),
        ("work.title", "title"),
        ("work.siteId", "site"),
    ):
        items = {i["id"]: i for i in company.lists[list_name]}
        assert all(re.fullmatch(r"\d+", str(i)) for i in items)
        assert {e[field] for e in company.employees} <= items.keys()
    sites = {i["id"]: i["name"] for i in company.lists["site"]}
    assert all(isinstance(i, int) for i in sites)
    assert all(isinstance(i, str) for i in {e["work.department"] for e in company.employees})
    assert all(sites[e["work.siteId"]] == e["work.site"] for e in company.employees)
    assert {i["id"] for i in company.lists["lifecycleStatus"]} >= {"employed", "garden leave"}


@pytest.mark.slow
def test_one_hundred_thousand_employees_generate(capsys):
    started = time.perf_counter()
    big = generate_company(100_000, seed=2, today=TODAY)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n100000 employees generated in {elapsed:.2f}s")
    assert len(big.employees) == 100_000
    assert len({e["root.id"] for e in big.employees}) == 100_000
