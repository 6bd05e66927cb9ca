"""Retries, backoff, throttling and error mapping of the shared HTTP shell (clients.http)."""

from __future__ import annotations

import email.utils
import threading

import httpx
import pytest

from reconciler.clients.http import ApiSession, AuthHints, RetryPolicy
from reconciler.clients.http_errors import parse_error_body
from reconciler.clients.pacer import AdaptiveLimiter, RateLimiter
from reconciler.clients.transport import build_http_client
from reconciler.errors import ApiAuthFailed, ApiRateLimited, ApiRejected, ApiUnavailable
from tests.support import FakeTime

WALL_NOW = 1_900_000_000.0
HINTS = AuthHints(unauthorized="check svc.user and svc.token", forbidden="grant the category")


def scripted(*answers):
    """A MockTransport handler playing `answers` in order (Response or exception), then 200."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        index = len(seen) - 1
        answer = answers[index] if index < len(answers) else httpx.Response(200, json={"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def make_session(handle, fake: FakeTime, policy: RetryPolicy | None = None, random=lambda: 0.5):
    client = build_http_client(
        "http://svc.test/v1",
        timeout_seconds=5,
        transport=httpx.MockTransport(handle),
        auth=("svc-user", "s3cret-token"),
    )
    return ApiSession(
        client,
        "Svc",
        auth_hints=HINTS,
        policy=policy,
        sleep=fake.sleep,
        wall_clock=lambda: WALL_NOW,
        random=random,
    )


def get(session: ApiSession, **kwargs) -> httpx.Response:
    return session.send(lambda: session.client.build_request("GET", "/things"), **kwargs)


def test_a_run_of_503s_ends_in_success_with_jittered_exponential_backoff():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(503)] * 3)
    session = make_session(handle, fake, random=lambda: 0.5)

    response = get(session)

    assert response.json() == {"ok": True}
    assert len(seen) == 4
    assert fake.sleeps == [0.25, 0.5, 1.0]
    assert session.stats.snapshot() == {"calls": 4, "retries": 3, "rate_limited": 0, "errors": 0}


def test_backoff_is_capped():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(502)] * 5)
    policy = RetryPolicy(max_attempts=6, base_seconds=1, cap_seconds=3)
    session = make_session(handle, fake, policy=policy, random=lambda: 1.0)

    get(session)

    assert fake.sleeps == [1, 2, 3, 3, 3]


def test_persistent_503_raises_api_unavailable_after_max_attempts():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(503, json={"error": "down"})] * 10)
    session = make_session(handle, fake, policy=RetryPolicy(max_attempts=3))

    with pytest.raises(ApiUnavailable) as caught:
        get(session)

    assert len(seen) == 3 and len(fake.sleeps) == 2
    assert caught.value.status == 503 and caught.value.retryable
    assert session.stats.errors == 1


def test_a_429_burst_honours_retry_after_seconds():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(429, headers={"Retry-After": "7"})] * 2)
    session = make_session(handle, fake)

    get(session)

    assert len(seen) == 3
    assert fake.sleeps == [7.0, 7.0]
    assert session.stats.rate_limited == 2


def test_retry_after_as_an_http_date_is_honoured():
    fake = FakeTime(100.0)
    when = email.utils.formatdate(WALL_NOW + 12, usegmt=True)
    handle, seen = scripted(httpx.Response(429, headers={"Retry-After": when}))
    session = make_session(handle, fake)

    get(session)

    assert fake.sleeps == [pytest.approx(12.0)]


def test_hibob_x_ratelimit_reset_epoch_is_honoured():
    fake = FakeTime(100.0)
    headers = {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(WALL_NOW + 20)),
    }
    handle, seen = scripted(httpx.Response(429, headers=headers))
    session = make_session(handle, fake)

    get(session)

    assert len(seen) == 2
    assert fake.sleeps == [pytest.approx(20.0)]


def test_a_hinted_wait_is_capped_at_a_minute():
    fake = FakeTime(100.0)
    handle, seen = scripted(httpx.Response(429, headers={"X-RateLimit-Reset": str(WALL_NOW + 900)}))
    session = make_session(handle, fake)

    get(session)

    assert fake.sleeps == [60.0]


def test_a_429_without_hint_backs_off_from_about_one_second():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(429, json={"error": "tooManyRequests"})] * 3)
    session = make_session(handle, fake, random=lambda: 1.0)

    get(session)

    assert fake.sleeps == [1.0, 2.0, 4.0]


def test_a_429_that_never_ends_raises_api_rate_limited_with_the_last_hint():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.Response(429, headers={"Retry-After": "3"})] * 10)
    session = make_session(handle, fake, policy=RetryPolicy(max_attempts=4))

    with pytest.raises(ApiRateLimited) as caught:
        get(session)

    assert len(seen) == 4
    assert caught.value.retry_after_seconds == 3.0 and caught.value.status == 429


def test_a_dropped_connection_is_retried():
    fake = FakeTime(100.0)
    handle, seen = scripted(
        httpx.RemoteProtocolError("Server disconnected"), httpx.ConnectError("Connection refused")
    )
    session = make_session(handle, fake)

    assert get(session).status_code == 200
    assert len(seen) == 3 and session.stats.retries == 2


def test_timeouts_that_persist_are_reported_as_unavailable_not_as_httpx_errors():
    fake = FakeTime(100.0)
    handle, seen = scripted(*[httpx.ReadTimeout("timed out")] * 10)
    session = make_session(handle, fake, policy=RetryPolicy(max_attempts=2))

    with pytest.raises(ApiUnavailable) as caught:
        get(session)

    assert "ReadTimeout" in str(caught.value) and caught.value.status is None


def test_a_401_is_reported_at_once_with_a_hint_and_without_the_secret():
    fake = FakeTime(100.0)
    handle, seen = scripted(httpx.Response(401))
    session = make_session(handle, fake)

    with pytest.raises(ApiAuthFailed) as caught:
        get(session)

    assert len(seen) == 1 and fake.sleeps == []
    message = str(caught.value)
    assert "svc.token" in message and "401" in message
    assert "s3cret-token" not in message and "Basic" not in message


def test_a_403_is_not_retried_and_uses_the_call_specific_hint():
    fake = FakeTime(100.0)
    body = {"error": {"code": "invalid_scope", "message": "Missing scope"}}
    handle, seen = scripted(httpx.Response(403, json=body))
    session = make_session(handle, fake)

    with pytest.raises(ApiAuthFailed) as caught:
        get(session, forbidden_hint="needs users:read")

    assert len(seen) == 1
    assert caught.value.code == "invalid_scope"
    assert "needs users:read" in str(caught.value)


def test_a_400_surfaces_as_api_rejected_with_the_vendor_code():
    fake = FakeTime(100.0)
    body = {"error": {"code": "mailAlreadyUsed", "message": "The mail is already used."}}
    handle, seen = scripted(httpx.Response(400, json=body))
    session = make_session(handle, fake)

    with pytest.raises(ApiRejected) as caught:
        get(session)

    assert len(seen) == 1
    assert caught.value.code == "mailAlreadyUsed" and caught.value.status == 400
    assert "\n" not in str(caught.value)


def test_a_404_is_returned_when_the_caller_allows_it():
    fake = FakeTime(100.0)
    handle, seen = scripted(httpx.Response(404, json={"error": {"code": "userNotFound"}}))
    session = make_session(handle, fake)

    assert get(session, allow_404=True).status_code == 404
    assert session.stats.errors == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": "userNotFound", "message": "No user"}}, ("userNotFound", "No user")),
        ({"error": "invalid_token"}, ("invalid_token", "")),
        ({"key": "bad.request", "error": "Invalid field"}, ("bad.request", "Invalid field")),
        ({"errorMessage": "Not allowed"}, (None, "Not allowed")),
        ("not a dict", (None, "")),
    ],
)
def test_every_vendor_error_shape_is_understood(body, expected):
    response = httpx.Response(400, json=body)
    assert parse_error_body(response) == expected


def test_an_html_200_from_a_wrong_path_is_rejected_with_a_clear_message():
    fake = FakeTime(100.0)
    html = httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html></html>")
    handle, seen = scripted(html)
    session = make_session(handle, fake)

    with pytest.raises(ApiRejected) as caught:
        get(session)

    assert "text/html" in str(caught.value) and "base URL" in str(caught.value)


def test_the_rate_limiter_spaces_requests_at_the_configured_rate():
    fake = FakeTime(100.0)
    limiter = RateLimiter(4.0, clock=fake.clock, sleep=fake.sleep)
    sent_at = []
    for _ in range(9):
        limiter.acquire()
        sent_at.append(fake.now)

    gaps = [later - earlier for earlier, later in zip(sent_at, sent_at[1:], strict=False)]
    assert all(gap >= 0.25 - 1e-9 for gap in gaps)
    assert sent_at[-1] - sent_at[0] == pytest.approx(2.0)


def test_the_rate_limiter_allows_a_small_burst_after_idling():
    fake = FakeTime(100.0)
    limiter = RateLimiter(1.0, burst=3, clock=fake.clock, sleep=fake.sleep)
    for _ in range(4):
        limiter.acquire()

    assert fake.sleeps == [pytest.approx(1.0)]


def test_the_rate_limiter_queues_concurrent_callers_one_interval_apart():
    fake = FakeTime(100.0)
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    limiter = RateLimiter(10.0, clock=fake.clock, sleep=record)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == pytest.approx([k / 10 for k in range(1, 8)])


def test_the_limiter_is_applied_before_every_attempt_including_retries():
    fake = FakeTime(100.0)
    handle, seen = scripted(httpx.Response(503))
    session = make_session(handle, fake, random=lambda: 0.0)
    limiter = RateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)

    get(session, limiter=limiter)
    get(session, limiter=limiter)

    assert len(seen) == 3
    assert sum(fake.sleeps) == pytest.approx(1.0)


def test_a_multi_line_vendor_message_becomes_one_line():
    fake = FakeTime(100.0)
    body = {"error": {"code": "mailInvalid", "message": "Invalid mail\n  see docs"}}
    handle, seen = scripted(httpx.Response(400, json=body))
    session = make_session(handle, fake)

    with pytest.raises(ApiRejected) as caught:
        get(session)

    assert "Invalid mail see docs" in str(caught.value) and "\n" not in str(caught.value)


def test_the_adaptive_limiter_climbs_additively_to_its_ceiling_while_nothing_is_refused():
    fake = FakeTime(100.0)
    limiter = AdaptiveLimiter(
        10.0, start=5.0, increase_per_second=1.0, clock=fake.clock, sleep=fake.sleep
    )
    rates = []
    for _ in range(200):
        limiter.acquire()
        limiter.record_success()
        rates.append(limiter.rate_per_second)

    assert rates[0] < 6 and rates[-1] == 10.0
    assert all(later >= earlier for earlier, later in zip(rates, rates[1:], strict=False))
    # From 5/s at +1/s each second: 10/s after about 5 s.
    assert fake.now - 100.0 < 200 / 10 + 5


def test_after_a_429_the_adaptive_rate_settles_just_under_the_refused_rate():
    fake = FakeTime(100.0)
    limiter = AdaptiveLimiter(10.0, start=10.0, clock=fake.clock, sleep=fake.sleep)
    limiter.record_rate_limited()
    for _ in range(50):  # five seconds at about 10/s
        limiter.acquire()
        limiter.record_success()

    assert 9.5 <= limiter.rate_per_second < 10.0


def test_a_429_cuts_the_adaptive_rate_once_per_window_however_many_requests_it_hits():
    fake = FakeTime(100.0)
    limiter = AdaptiveLimiter(10.0, start=10.0, decrease=0.5, clock=fake.clock, sleep=fake.sleep)

    for _ in range(4):  # four requests in flight at the old rate all come back 429
        limiter.record_rate_limited()
    after_burst = limiter.rate_per_second
    fake.sleep(1.5)
    limiter.record_rate_limited()

    assert after_burst == 5.0
    assert limiter.rate_per_second == 2.5


def test_the_adaptive_rate_never_drops_below_its_floor():
    fake = FakeTime(100.0)
    limiter = AdaptiveLimiter(10.0, floor=1.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(20):
        limiter.record_rate_limited()
        fake.sleep(2.0)

    assert limiter.rate_per_second == 1.0


def test_the_session_tells_an_adaptive_limiter_about_429s_and_successes():
    fake = FakeTime(100.0)
    handle, seen = scripted(httpx.Response(429), httpx.Response(429))
    session = make_session(handle, fake, random=lambda: 0.0)
    limiter = AdaptiveLimiter(8.0, start=8.0, decrease=0.5, clock=fake.clock, sleep=fake.sleep)

    get(session, limiter=limiter)
    after_429s = limiter.rate_per_second
    for _ in range(100):
        get(session, limiter=limiter)

    assert len(seen) == 103
    assert after_429s < 8.0
    assert limiter.rate_per_second > after_429s
