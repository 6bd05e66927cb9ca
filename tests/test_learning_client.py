"""LearningClient against the 360Learning simulator: token life, end state of writes, faults."""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor

import contract
import httpx
import pytest
from openapi_core import Config, OpenAPI
from pydantic import SecretStr

from reconciler.clients.learning import LearningClient
from reconciler.clients.learning_groups import Membership, add_memberships
from reconciler.core.models import GroupRole
from reconciler.errors import ApiAuthFailed, ApiRejected
from reconciler.sandbox.learning import PROVISIONING_SCOPES, LearningSimulator
from reconciler.settings_sections import LearningSettings
from tests.support import FakeTime

UNKNOWN_ID = "0123456789abcdef01234567"


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(1000.0)


@pytest.fixture
def sim(fake: FakeTime) -> LearningSimulator:
    return LearningSimulator(clock=fake, sleep=fake.sleep)


class Recorder:
    """Wraps the simulator to keep the requests (and the fake time they were sent at)."""

    def __init__(self, sim: LearningSimulator, fake: FakeTime) -> None:
        self.sim, self.fake = sim, fake
        self.sent: list[tuple[float, httpx.Request]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((self.fake.now, request))
        return self.sim.handle(request)


def make_client(
    sim, fake, *, secret="sandbox-secret", writes=1000.0, reads=1000.0, handler=None
) -> LearningClient:
    settings = LearningSettings(
        base_url="http://learning.test",
        client_id="sandbox-client",
        client_secret=SecretStr(secret),
        default_group_id=sim.root_group_id,
        max_writes_per_second=writes,
        max_reads_per_second=reads,
    )
    transport = httpx.MockTransport(handler or sim.handle)
    return LearningClient(settings, transport=transport, sleep=fake.sleep, clock=fake)


@pytest.fixture
def client(sim, fake) -> LearningClient:
    return make_client(sim, fake)


def token_calls(sim) -> int:
    return sum(1 for _, path, _ in sim.requests if path == "/api/v2/oauth2/token")


def statuses(sim) -> list[int]:
    return [status for _, _, status in sim.requests]


def test_constructing_a_client_makes_no_request(sim, fake):
    make_client(sim, fake)

    assert sim.requests == []


def test_the_token_is_fetched_once_and_reused(client, sim):
    client.get_user(sim.owner_id)
    client.list_users()
    client.list_managers(sim.owner_id)

    assert token_calls(sim) == 1


def test_the_token_is_renewed_a_minute_before_it_expires(client, sim, fake):
    client.get_user(sim.owner_id)
    fake.now += 3600 - 59

    client.get_user(sim.owner_id)

    assert token_calls(sim) == 2
    assert 401 not in statuses(sim)


def test_an_expired_token_is_refreshed_exactly_once_and_the_call_succeeds(client, sim):
    client.get_user(sim.owner_id)
    sim.expire_tokens()

    user = client.get_user(sim.owner_id)

    assert user is not None and user.learning_user_id == sim.owner_id
    assert token_calls(sim) == 2
    assert statuses(sim)[1:] == [200, 401, 200, 200]


def test_a_token_refused_again_after_refresh_is_reported_after_one_retry(sim, fake):
    def refuse_users(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v2/users"):
            sim.handle(request)
            return httpx.Response(401, json={"error": "invalid_token"})
        return sim.handle(request)

    client = make_client(sim, fake, handler=refuse_users)

    with pytest.raises(ApiAuthFailed) as caught:
        client.get_user(sim.owner_id)

    assert token_calls(sim) == 2
    assert len(sim.requests) == 4
    assert "learning.client_secret" in str(caught.value)


def test_a_wrong_secret_is_reported_at_once_without_the_secret(sim, fake):
    client = make_client(sim, fake, secret="wrong-secret-xyz")

    with pytest.raises(ApiAuthFailed) as caught:
        client.list_users(status="active").__next__()

    assert sim.requests == [("POST", "/api/v2/oauth2/token", 401)]
    message = str(caught.value)
    assert caught.value.code == "invalid_client"
    assert "learning.client_secret" in message and "wrong-secret-xyz" not in message


def test_check_access_names_the_missing_scope(client, sim):
    sim.scopes.discard("users:read")

    with pytest.raises(ApiAuthFailed) as caught:
        client.check_access()

    assert caught.value.status == 403 and "users:read" in str(caught.value)
    assert statuses(sim) == [200, 403]


def test_check_access_passes_with_the_provisioning_scopes(client, sim):
    client.check_access()

    assert statuses(sim) == [200, 200]


def test_create_user_creates_an_invited_member_without_none_attributes(client, sim):
    attributes = {
        "mail": "Jane.Doe@acme.example",
        "firstName": "Jane",
        "lastName": "Doe",
        "job": None,
        "lang": "fr",
    }

    user, restored = client.create_user(
        attributes, group_id=sim.sales_group_id, role="learner", send_invitation_email=False
    )

    assert restored is False
    stored = sim.user(user.learning_user_id)
    assert stored["status"] == "invited" and stored["firstName"] == "Jane"
    assert "job" not in stored and stored["lang"] == "fr"
    assert sim.roles_of(user.learning_user_id) == {(sim.sales_group_id, "learner")}
    assert sim.invitations_sent == []
    assert user.mail == "jane.doe@acme.example" and "_id" not in user.attributes


def test_create_user_reports_a_restored_deleted_account(client, sim):
    old_id = sim.seed_user("back@acme.example", status="deleted", firstName="Back")

    user, restored = client.create_user(
        {"mail": "back@acme.example"},
        group_id=sim.root_group_id,
        role="learner",
        send_invitation_email=True,
    )

    assert restored is True and user.learning_user_id == old_id
    assert sim.user(old_id)["status"] == "invited"
    assert sim.invitations_sent == ["back@acme.example"]


def test_a_duplicate_mail_surfaces_as_rejected_with_the_vendor_code(client, sim):
    sim.seed_user("taken@acme.example")

    with pytest.raises(ApiRejected) as caught:
        client.create_user(
            {"mail": "taken@acme.example"},
            group_id=sim.root_group_id,
            role="learner",
            send_invitation_email=False,
        )

    assert caught.value.code == "mailAlreadyUsed" and caught.value.status == 400
    assert statuses(sim).count(400) == 1


def test_update_user_sends_none_as_null_to_clear(client, sim):
    user_id = sim.seed_user("amy@acme.example", firstName="Amy", job="Designer")

    updated = client.update_user(user_id, {"job": None, "organization": "Product"})

    assert "job" not in sim.user(user_id)
    assert sim.user(user_id)["organization"] == "Product"
    assert updated.attributes["organization"] == "Product"


def test_activate_and_deactivate_change_the_status(client, sim):
    user_id = sim.seed_user("new@acme.example", status="invited")

    assert client.activate_user(user_id).status == "active"
    assert sim.user(user_id)["status"] == "active"
    assert client.deactivate_user(user_id) is None
    assert sim.user(user_id)["status"] == "deleted"


def test_get_user_returns_none_for_an_unknown_id(client, sim):
    assert client.get_user(UNKNOWN_ID) is None


def test_list_users_follows_next_links_over_several_pages(client, sim):
    sim.page_size = 3
    for n in range(10):
        sim.seed_user(f"user{n}@acme.example")

    users = list(client.list_users())

    assert len({u.learning_user_id for u in users}) == 11
    pages = [r for r in sim.requests if r[1] == "/api/v2/users"]
    assert len(pages) == 4


def test_list_users_filters_by_status_and_by_mails_with_raw_brackets(sim, fake):
    recorder = Recorder(sim, fake)
    client = make_client(sim, fake, handler=recorder)
    gone = sim.seed_user("gone@acme.example", status="deleted")
    here = sim.seed_user("here@acme.example")

    deleted = list(client.list_users(status="deleted"))
    picked = list(client.list_users(mails=["here@acme.example", "gone@acme.example"]))
    both = list(client.list_users_with_deleted(mails=["here@acme.example", "gone@acme.example"]))
    sim.lists_deleted_by_default = True  # the other reading: each user is yielded once
    again = list(client.list_users_with_deleted(mails=["here@acme.example", "gone@acme.example"]))

    assert [u.learning_user_id for u in deleted] == [gone]
    assert {u.learning_user_id for u in picked} == {here}
    assert sorted(u.learning_user_id for u in both) == sorted([gone, here])
    assert sorted(u.learning_user_id for u in again) == sorted([gone, here])
    queries = [r.url.query.decode() for _, r in recorder.sent if r.method == "GET"]
    assert "status[eq]=deleted" in queries
    assert "mail[in]=here%40acme.example&mail[in]=gone%40acme.example" in queries


def test_find_users_by_mail(client, sim):
    user_id = sim.seed_user("plus+tag@acme.example")

    found = client.find_users_by_mail("plus+tag@acme.example")

    assert [u.learning_user_id for u in found] == [user_id]
    assert client.find_users_by_mail("nobody@acme.example") == []


def test_managers_are_added_listed_across_pages_and_removed(client, sim):
    sim.managers_page_size = 2
    user_id = sim.seed_user("report@acme.example")
    managers = [sim.seed_user(f"boss{n}@acme.example") for n in range(3)]

    for manager_id in managers:
        client.add_manager(user_id, manager_id)
    listed = client.list_managers(user_id)
    client.remove_manager(user_id, managers[0])

    assert sorted(listed) == sorted(managers)
    assert sim.managers_of(user_id) == set(managers[1:])


def test_group_roles_use_the_kebab_case_path_for_user_admin(sim, fake):
    recorder = Recorder(sim, fake)
    client = make_client(sim, fake, handler=recorder)
    user_id = sim.seed_user("admin@acme.example")

    client.add_group_role(sim.sales_group_id, "userAdmin", user_id)
    roles = client.list_user_roles(user_id)
    client.remove_group_role(sim.root_group_id, "learner", user_id)

    assert GroupRole(sim.sales_group_id, "userAdmin") in roles
    assert sim.roles_of(user_id) == {(sim.sales_group_id, "userAdmin")}
    paths = [r.url.path for _, r in recorder.sent]
    assert f"/api/v2/groups/{sim.sales_group_id}/user-admin/{user_id}" in paths


def test_external_ids_are_created_listed_across_pages_and_found(client, sim):
    sim.external_ids_page_size = 2
    users = {f"E{n}": sim.seed_user(f"e{n}@acme.example") for n in range(3)}
    for value, user_id in users.items():
        client.create_external_id("hibob", user_id, value)
    sim.add_external_id("other", sim.owner_id, "E0")

    assert client.list_external_ids("hibob") == users
    assert len(sim.external_ids()) == 4


def test_a_429_burst_backs_off_from_a_second_and_succeeds(client, sim, fake):
    client.get_user(sim.owner_id)
    sim.burst_429(3)
    before = len(fake.sleeps)

    assert client.get_user(sim.owner_id) is not None

    backoffs = [w for w in fake.sleeps[before:] if w > 0.01]  # not the 1000/s limiter's waits
    assert statuses(sim)[2:] == [429, 429, 429, 200]
    assert len(backoffs) == 3 and all(1.0 <= w <= 30.0 for w in backoffs)
    assert client.stats.rate_limited == 3


def test_a_run_of_503s_and_a_dropped_connection_end_in_success(client, sim):
    user_id = sim.seed_user("flaky@acme.example")
    sim.faults.fail_next(2, 503)
    sim.faults.drop_next(1)

    client.update_user(user_id, {"job": "Pilot"})

    assert sim.user(user_id)["job"] == "Pilot"
    assert client.stats.retries == 3


def test_writes_are_spaced_to_the_configured_rate(sim, fake):
    sim.write_limit_per_second = 5
    recorder = Recorder(sim, fake)
    client = make_client(sim, fake, writes=5.0, handler=recorder)
    user_id = sim.seed_user("busy@acme.example")

    for n in range(12):
        client.update_user(user_id, {"job": f"Job {n}"})

    writes = [at for at, r in recorder.sent if r.method == "PATCH"]
    assert len(writes) == 12 and 429 not in statuses(sim)
    gaps = [later - earlier for earlier, later in zip(writes, writes[1:], strict=False)]
    assert min(gaps) >= 0.2 - 1e-9


def test_concurrent_calls_share_one_token(sim, fake):
    client = make_client(sim, fake)
    user_ids = [sim.seed_user(f"t{n}@acme.example") for n in range(12)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda uid: client.update_user(uid, {"job": "Threaded"}), user_ids))

    assert token_calls(sim) == 1
    assert all(sim.user(uid)["job"] == "Threaded" for uid in user_ids)


def test_requests_carry_the_version_header_and_content_type_only_with_a_body(sim, fake):
    recorder = Recorder(sim, fake)
    client = make_client(sim, fake, handler=recorder)
    user_id = sim.seed_user("hdr@acme.example")

    client.get_user(user_id)
    client.update_user(user_id, {"job": "X"})
    client.deactivate_user(user_id)

    resource = [r for _, r in recorder.sent if "oauth2" not in r.url.path]
    assert all(r.headers["360-api-version"] == "v2.0" for r in resource)
    assert all(r.headers["accept"] == "application/json" for r in resource)
    assert all(r.headers["authorization"].startswith("Bearer ") for r in resource)
    with_type = {r.method for r in resource if "content-type" in r.headers}
    assert with_type == {"PATCH"}


def test_a_next_link_to_another_host_is_refused(sim, fake):
    def foreign_link(request: httpx.Request) -> httpx.Response:
        response = sim.handle(request)
        if request.url.path == "/api/v2/users":
            response.headers["Link"] = '<https://evil.example/api/v2/users?next=x>; rel="next"'
        return response

    client = make_client(sim, fake, handler=foreign_link)

    with pytest.raises(ApiRejected) as caught:
        list(client.list_users())

    assert caught.value.code == "foreignNextLink"
    assert all(path != "/api/v2/users" or status == 200 for _, path, status in sim.requests)
    assert len([r for r in sim.requests if r[1] == "/api/v2/users"]) == 1


class OtherIntegration:
    """Another client of the same company sending `per_second` writes of its own (it ignores
    its own 429s). Single-threaded: before each of our requests, the writes it made since
    reach the simulator, each at the (fake) time it was due."""

    def __init__(self, sim: LearningSimulator, fake: FakeTime, per_second: float) -> None:
        self.sim, self.fake, self.interval = sim, fake, 1 / per_second
        self.next_at = fake.now
        self.user_id = sim.seed_user("other-integration@acme.example")
        token = sim.handle(
            httpx.Request(
                "POST",
                "http://learning.test/api/v2/oauth2/token",
                json={
                    "grant_type": "client_credentials",
                    "client_id": "sandbox-client",
                    "client_secret": "sandbox-secret",
                },
            )
        ).json()["access_token"]
        self.headers = {"authorization": f"Bearer {token}", "360-api-version": "v2.0"}
        self.ours: list[tuple[float, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.fake.now
        while self.next_at <= now:
            self.fake.now = self.next_at
            self.sim.handle(
                httpx.Request(
                    "PATCH",
                    f"http://learning.test/api/v2/users/{self.user_id}",
                    json={"job": "theirs"},
                    headers=self.headers,
                )
            )
            self.next_at += self.interval
        self.fake.now = now
        response = self.sim.handle(request)
        if request.method == "PATCH":
            self.ours.append((self.fake.now, response.status_code))
        return response


def successful_writes_per_second(sent: list[tuple[float, int]]) -> float:
    ok = [at for at, status in sent if status == 200]
    return (len(ok) - 1) / (ok[-1] - ok[0])


def test_writes_settle_at_the_company_limit_without_a_failure(sim, fake):
    integration = OtherIntegration(sim, fake, per_second=1e-9)  # alone: sends nothing
    client = make_client(sim, fake, writes=10.0, handler=integration)
    user_ids = [sim.seed_user(f"w{n}@acme.example") for n in range(400)]

    for n, user_id in enumerate(user_ids):
        client.update_user(user_id, {"job": f"Job {n}"})

    assert all(sim.user(u)["job"] == f"Job {n}" for n, u in enumerate(user_ids))
    assert successful_writes_per_second(integration.ours[100:]) >= 9.0
    assert sim.rate_limited_count <= 10


def test_writes_back_off_without_a_failure_when_another_integration_shares_the_budget(sim, fake):
    integration = OtherIntegration(sim, fake, per_second=4.0)
    client = make_client(sim, fake, writes=10.0, handler=integration)
    user_ids = [sim.seed_user(f"s{n}@acme.example") for n in range(300)]

    for n, user_id in enumerate(user_ids):
        client.update_user(user_id, {"job": f"Job {n}"})

    assert all(sim.user(u)["job"] == f"Job {n}" for n, u in enumerate(user_ids))
    ours_refused = sum(1 for _, status in integration.ours if status == 429)
    assert ours_refused <= len(user_ids) * 0.1
    assert successful_writes_per_second(integration.ours[50:]) >= 4.0


def memberships_for(sim, users: int, group_id: str) -> list[Membership]:
    return [
        Membership(sim.seed_user(f"m{n}@acme.example"), group_id, "learner") for n in range(users)
    ]


def test_bulk_memberships_reach_every_user_in_a_few_calls(sim, fake):
    wanted = memberships_for(sim, 120, sim.engineering_group_id)
    client = make_client(sim, fake)

    outcome = add_memberships(client, wanted)

    assert outcome == {m: None for m in wanted}
    assert all((m.group_id, "learner") in sim.roles_of(m.learning_user_id) for m in wanted)
    writes = [r for r in sim.requests if r[0] != "GET" and "oauth2" not in r[1]]
    assert len(writes) == 1 and client.is_bulk_granted is True


def test_bulk_memberships_report_each_refused_item_and_add_the_others(sim, fake):
    wanted = memberships_for(sim, 5, sim.sales_group_id)
    gone = Membership(
        sim.seed_user("gone@acme.example", status="deleted"), sim.sales_group_id, "learner"
    )
    client = make_client(sim, fake)

    outcome = add_memberships(client, [*wanted, gone])

    assert outcome[gone] == "userDeleted"
    assert all(outcome[m] is None for m in wanted)
    assert all((sim.sales_group_id, "learner") in sim.roles_of(m.learning_user_id) for m in wanted)


def test_without_the_bulk_scope_memberships_are_added_one_by_one(fake):
    sim = LearningSimulator(
        clock=fake, sleep=fake.sleep, scopes=set(PROVISIONING_SCOPES) - {"groups:bulk"}
    )
    wanted = memberships_for(sim, 4, sim.engineering_group_id)
    client = make_client(sim, fake)

    first = add_memberships(client, wanted[:2])
    second = add_memberships(client, wanted[2:])

    assert {**first, **second} == {m: None for m in wanted}
    assert all((m.group_id, "learner") in sim.roles_of(m.learning_user_id) for m in wanted)
    bulk_tries = [r for r in sim.requests if r[:2] == ("POST", "/api/v2/bulk/groups/memberships")]
    assert len(bulk_tries) == 1 and client.is_bulk_granted is False


def test_more_than_twenty_thousand_memberships_go_in_several_jobs(sim, fake):
    wanted = memberships_for(sim, 20_001, sim.engineering_group_id)
    sim.bulk_items_per_second = 10**6
    client = make_client(sim, fake)

    outcome = add_memberships(client, wanted)

    assert all(error is None for error in outcome.values()) and len(outcome) == 20_001
    jobs = [r for r in sim.requests if r[:2] == ("POST", "/api/v2/bulk/groups/memberships")]
    assert [status for *_, status in jobs] == [202, 202]


@functools.cache
def bulk_spec() -> contract.Spec:
    path = contract.require_specs() / "360learning-bulk-api.openapi.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for operation in data["paths"]["/api/v2/bulk/operations"].values():
        for param in operation.get("parameters", []):
            # As for the core spec: openapi-core decodes deepObject filters typed "object" only.
            if param.get("style") == "deepObject":
                param["schema"].setdefault("type", "object")
    # As for the core spec: oauth2 without flows cannot be checked; the docs say Bearer.
    data["components"]["securitySchemes"]["oauth2"] = {"type": "http", "scheme": "bearer"}
    return contract.Spec(
        "learning-bulk",
        "https://app.360learning.com",
        OpenAPI.from_dict(data, config=Config(spec_validator_cls=None)),
        data,
    )


def test_bulk_memberships_send_and_receive_what_the_bulk_api_spec_documents(sim, fake):
    spec = bulk_spec()
    operations = set()

    def validating(request: httpx.Request) -> httpx.Response:
        response = sim.handle(request)
        if "/bulk/" in request.url.path:
            request.read()
            response.read()
            contract.validate_exchange(spec, request, response)
            operations.add((spec.operation(request), response.status_code))
        return response

    client = make_client(sim, fake, handler=validating)
    gone = Membership(
        sim.seed_user("gone@acme.example", status="deleted"), sim.sales_group_id, "learner"
    )
    add_memberships(client, [*memberships_for(sim, 3, sim.sales_group_id), gone])
    headers = {"authorization": f"Bearer {client._current_token()}", "360-api-version": "v2.0"}
    job = validating(
        httpx.Request(
            "POST",
            "http://learning.test/api/v2/bulk/groups/memberships",
            headers=headers,
            json={
                "input": [
                    {
                        "userId": gone.learning_user_id,
                        "groupId": sim.sales_group_id,
                        "role": "learner",
                    }
                ]
            },
        )
    )
    validating(httpx.Request("GET", job.headers["location"] + "/results", headers=headers))
    validating(
        httpx.Request(
            "GET", "http://learning.test/api/v2/bulk/operations/" + "b" * 24, headers=headers
        )
    )

    assert operations == {
        ("GET /api/v2/bulk/operations", 200),  # bulkOperations:read, tested before a job
        ("POST /api/v2/bulk/groups/memberships", 202),
        ("GET /api/v2/bulk/operations/{bulkOperationId}", 200),
        ("GET /api/v2/bulk/operations/{bulkOperationId}/results", 200),
        ("GET /api/v2/bulk/operations/{bulkOperationId}/results", 400),  # not run yet
        ("GET /api/v2/bulk/operations/{bulkOperationId}", 404),
    }
