"""Usage events (recorded once each), their sources, the late policy, metrics and the daily roll-up, /usage."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from app.extensions import db
from app.jobs.queues import get_redis
from app.models import Metric, ServiceCommand, Status, UsageDaily, UsageEvent
from app.models.types import utcnow
from app.ops import engine
from app.usage import requests as request_log
from app.usage.events import open_period_start, record
from app.usage.logfiles import ingest_path
from app.usage.rollup import rollup

from .api_helpers import assert_error, with_key
from .engine_helpers import issue, reload
from .factories import make_plan, make_user

NOW = utcnow()


def event(user="ada", when=None, **fields):
    when = when or NOW - timedelta(minutes=5)
    return {
        "start_dt": when.isoformat(),
        "end_dt": (when + timedelta(seconds=2)).isoformat(),
        "user": user,
        "kind": "api",
        "action": "request",
        "client_ip": "10.0.0.1",
        "data": {"request_uri": "/api/v1/config/", "request_method": "GET", "request_resource_name": "config"},
        **fields,
    }


def count_events() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(UsageEvent))


@pytest.fixture
def ada(app):
    return make_user(userid="ada", email="ada@example.com")


# recording


def test_each_event_is_accepted_once_and_bad_ones_are_rejected_with_the_reason(ada):
    events = [
        event(id="e1"),
        event(id="e1"),  # the same id again in the batch
        event(),  # no id: its hash is its id
        event(start_dt="yesterday"),
        event(user="nobody"),
        event(quantity=-1),
        event(kind=""),
        event(end_dt=(NOW - timedelta(hours=1)).isoformat()),
        event(start_dt=(NOW + timedelta(hours=1)).isoformat(), end_dt=None),
        "not an object",
    ]
    outcome = record(events, "batch")
    db.session.commit()
    assert [r["status"] for r in outcome.results] == ["accepted", "duplicate", "accepted"] + ["rejected"] * 7
    reasons = [r["reason"] for r in outcome.results[3:]]
    assert "start_dt: 'yesterday' is not an ISO 8601 time" in reasons and "user: no user 'nobody'" in reasons
    assert "quantity: a number of 0 or more" in reasons and "end_dt: is before start_dt" in reasons
    assert "start_dt: is in the future" in reasons and "an event is a JSON object" in reasons
    again = record(events[:3], "batch")
    db.session.commit()
    assert [r["status"] for r in again.results] == ["duplicate"] * 3 and count_events() == 2
    stored = db.session.get(UsageEvent, "e1")
    assert stored.user_id == ada.id and stored.duration == 2.0 and stored.data["request_resource_name"] == "config"


def test_concurrent_retries_of_the_same_events_count_once(any_app):
    make_user(userid="ada")
    batch = [event(id=f"race-{i}") for i in range(200)]
    results = []

    def send():
        with any_app.app_context():
            outcome = record(batch, "batch")
            db.session.commit()
            results.append(outcome.count("accepted"))
            db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 200 and count_events() == 200


def test_late_events_are_booked_at_the_start_of_the_open_period(ada):
    assert open_period_start(datetime(2026, 12, 1, 1, 59, tzinfo=UTC)) == datetime(2026, 11, 1, tzinfo=UTC)
    assert open_period_start(datetime(2026, 12, 1, 2, 0, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)
    now = datetime(2026, 12, 15, 12, tzinfo=UTC)
    late = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    outcome = record(
        [event(id="late", when=late), event(id="ok", when=datetime(2026, 12, 1, tzinfo=UTC))], "batch", now
    )
    db.session.commit()
    assert [r["late"] for r in outcome.results] == [True, False]
    stored = db.session.get(UsageEvent, "late")
    assert stored.time == datetime(2026, 12, 1, tzinfo=UTC) and stored.duration == 2.0
    assert stored.data["late"] is True and stored.data["original_time"] == late.isoformat()


# the batch API


def test_the_usage_api_takes_batches_from_admins_and_service_accounts(client, ada):
    _, user_headers = with_key()
    response = client.post("/admin/api/v2/usage/event/", json={"events": [event()]}, headers=user_headers)
    assert_error(response, 403, "forbidden", "service accounts")
    service, headers = with_key(service_account=True)
    response = client.post(
        "/admin/api/v2/usage/event/", json={"events": [event(id="a"), event(id="a"), {}]}, headers=headers
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["results"][2]["reason"].startswith("start_dt")
    _, admin_headers = with_key(admin=True)
    response = client.post("/admin/api/v2/usage/event/", json={"events": [event(id="a")]}, headers=admin_headers)
    assert response.get_json()["results"][0]["status"] == "duplicate"
    assert_error(client.post("/admin/api/v2/usage/event/", json={"events": []}, headers=headers), 400, "bad_request")
    assert_error(client.post("/admin/api/v2/usage/event/", json={"evnts": []}, headers=headers), 400, "bad_request")
    assert_error(client.post("/admin/api/v2/usage/event/", json={"events": [event()]}), 401, "unauthorized")


# the API's request log


def test_api_requests_are_logged_without_a_database_write_and_drained_once(client, app):
    make_plan()
    user, headers = with_key()
    get_redis().delete(request_log.KEY)
    client.get("/api/v1/config/", headers=headers)
    client.get("/admin/api/v2/service/plan/", headers=headers)
    client.get("/login")  # not an API request
    assert count_events() == 0 and get_redis().llen(request_log.KEY) == 2
    raw = get_redis().lrange(request_log.KEY, 0, -1)
    assert request_log.drain_request_log() == {"recorded": 2, "duplicates": 0, "rejected": 0}
    get_redis().rpush(request_log.KEY, *raw)  # a crash between the insert and the trim: drained again
    assert request_log.drain_request_log()["duplicates"] == 2 and count_events() == 2
    first = db.session.scalars(select(UsageEvent).order_by(UsageEvent.time)).first()
    assert first.user_id == user.id and first.kind == "api" and first.source == "api"
    assert first.data["request_uri"] == "/api/v1/config/" and first.data["request_method"] == "GET"
    assert first.data["request_resource_name"] == "api_config.config"
    assert first.duration is not None and first.duration >= 0


# log files


def write_lines(path, lines, mode="a"):
    with open(path, mode) as handle:
        for line in lines:
            handle.write((json.dumps(line) if isinstance(line, dict) else line) + "\n")


def test_ingestusage_reads_each_line_once_across_reruns_appends_and_rotation(runner, ada, tmp_path):
    log = tmp_path / "service.log"
    write_lines(log, [event(id=f"a{i}") for i in range(3)], "w")
    result = runner.invoke(args=["ingestusage", str(log)])
    assert result.exit_code == 0 and "3 lines read" in result.output and "3 new events" in result.output
    result = runner.invoke(args=["ingestusage", str(log)])
    assert "0 lines read" in result.output and count_events() == 3

    write_lines(log, [event(id="a3"), "{not json", event(id="a4", user="ghost")])
    with open(log, "a") as handle:
        handle.write(json.dumps(event(id="partial")))  # still being written: no newline yet
    result = runner.invoke(args=["ingestusage", str(log)])
    assert result.exit_code == 0 and "1 new events" in result.output and "2 malformed" in result.output
    assert f"{log}:5: not JSON" in result.output and f"{log}:6: user: no user 'ghost'" in result.output

    with open(log, "a") as handle:
        handle.write("\n")  # the partial line is complete now ...
    write_lines(log, [event(id="a5")])  # ... and one more before the rotation
    log.rename(tmp_path / "service.log.1")
    write_lines(log, [event(id=f"b{i}") for i in range(2)], "w")
    result = runner.invoke(args=["ingestusage", str(log)])
    assert result.exit_code == 0 and "4 new events" in result.output, result.output
    assert count_events() == 3 + 1 + 2 + 2
    result = runner.invoke(args=["ingestusage", str(log)])
    assert "0 new events" in result.output


def test_ingestusage_from_stdin_and_bad_paths(runner, ada, tmp_path):
    lines = "\n".join(json.dumps(event()) for _ in range(1)) + "\n" + json.dumps(event(id="x")) + "\n"
    result = runner.invoke(args=["ingestusage", "-"], input=lines)
    assert result.exit_code == 0 and "2 new events" in result.output
    result = runner.invoke(args=["ingestusage", "-"], input=lines)
    assert "0 new events, 2 duplicates" in result.output
    result = runner.invoke(args=["ingestusage", str(tmp_path / "missing.log")])
    assert result.exit_code == 1 and "cannot read" in result.output and "Traceback" not in result.output


def test_the_same_line_in_two_files_is_one_event(ada, tmp_path):
    line = json.dumps(event()) + "\n"
    (tmp_path / "one.log").write_text(line)
    (tmp_path / "two.log").write_text(line)
    assert ingest_path(str(tmp_path / "one.log")).inserted == 1
    report = ingest_path(str(tmp_path / "two.log"))
    assert report.inserted == 0 and report.duplicates == 1


# metrics and the roll-up


@pytest.fixture
def metrics(app):
    plan = make_plan()
    for name, kind, action, aggregation, field in [
        ("requests", "api", "request", "count", None),
        ("bytes", "api", "request", "sum", None),
        ("peak", "api", "request", "max", None),
        ("resources", "api", "request", "unique", "request_resource_name"),
        ("busy seconds", "api", None, "duration", None),
        ("service hours", "service", "hours", "sum", None),
    ]:
        db.session.add(Metric(plan=plan, name=name, kind=kind, action=action, aggregation=aggregation, field=field))
    db.session.commit()
    return plan


def daily(metric_name, user_id) -> dict:
    db.session.expire_all()
    rows = db.session.execute(
        select(UsageDaily.day, UsageDaily.value)
        .join(Metric, Metric.id == UsageDaily.metric_id)
        .where(Metric.name == metric_name, UsageDaily.user_id == user_id)
    ).all()
    return dict(rows)


def test_rollup_aggregates_each_metric_per_day_and_twice_changes_nothing(ada, metrics):
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    day1, day2 = now - timedelta(days=1), now
    names = []
    for i, (when, quantity, resource) in enumerate([(day1, 10, "a"), (day1, 30, "b"), (day1, 5, "a"), (day2, 7, "c")]):
        names.append(event(id=f"r{i}", when=when, quantity=quantity, data={"request_resource_name": resource}))
    record(names, "batch", now)
    db.session.commit()
    first = rollup(now=now)
    d1, d2 = day1.date().isoformat(), day2.date().isoformat()
    assert daily("requests", ada.id) == {d1: 3, d2: 1}
    assert daily("bytes", ada.id) == {d1: 45, d2: 7}
    assert daily("peak", ada.id) == {d1: 30, d2: 7}
    assert daily("resources", ada.id) == {d1: 2, d2: 1}
    assert daily("busy seconds", ada.id) == {d1: 6, d2: 2}
    assert first["rows"] == 10
    before = db.session.execute(select(UsageDaily.metric_id, UsageDaily.day, UsageDaily.value)).all()
    rollup(now=now)  # the recent events again (a margin for writers racing the last run): the same rows
    rollup(start=day1.date(), end=day2.date(), now=now)  # everything again
    after = db.session.execute(select(UsageDaily.metric_id, UsageDaily.day, UsageDaily.value)).all()
    assert sorted(before) == sorted(after)
    # a late-arriving event of day 1: its day is recomputed on the next run
    record([event(id="r9", when=day1, quantity=1)], "batch", now)
    db.session.commit()
    rollup(now=now + timedelta(minutes=1))
    assert daily("requests", ada.id)[d1] == 4


def test_deployment_lifetimes_become_service_hours(ada, metrics):
    command = issue("omegaml", ada)
    engine.execute(command.id, worker="test")
    deployment = reload(command).deployment
    now = utcnow()
    installed = now - timedelta(days=2)
    start_of_yesterday = datetime.combine(now.date() - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    db.session.execute(update(ServiceCommand).where(ServiceCommand.id == command.id).values(finished_at=installed))
    db.session.commit()
    rollup(now=now)
    hours = daily("service hours", ada.id)
    first_day = installed.date().isoformat()
    expected_first = (start_of_yesterday - installed).total_seconds() / 3600
    assert hours[first_day] == pytest.approx(expected_first, abs=1e-3)
    assert hours[(now.date() - timedelta(days=1)).isoformat()] == pytest.approx(24)
    assert now.date().isoformat() not in hours  # today is not finished
    assert rollup(now=now)["lifetime events"] == 0
    assert deployment.status == Status.COMPLETED


# the page


def test_the_usage_page_shows_daily_bars_totals_and_admins_the_top_users(client, login, ada, metrics):
    record([event(id=f"p{i}") for i in range(3)], "batch")
    db.session.commit()
    rollup(start=NOW.date().replace(day=1), end=NOW.date())
    login(ada)
    page = client.get("/usage").get_data(as_text=True)
    assert 'data-metric="requests"' in page and "<svg" in page and ">3 <" in page
    assert "Top users" not in page
    client.post("/logout")
    login(make_user(admin=True))
    page = client.get("/usage").get_data(as_text=True)
    assert 'data-top="requests"' in page and "ada@example.com" in page
    assert client.get("/usage?month=nonsense").status_code == 200
    assert 'id="no-usage"' in client.get("/usage?month=2001-01").get_data(as_text=True)


def test_metrics_are_managed_in_the_console(client, login, app):
    plan = make_plan()
    login(make_user(admin=True))
    response = client.post(
        "/admin/metric/new/",
        data={"plan": str(plan.id), "name": "uniques", "kind": "api", "aggregation": "unique", "unit": ""},
    )
    assert "a unique count needs the data field" in response.get_data(as_text=True)
    client.post(
        "/admin/metric/new/",
        data={"plan": str(plan.id), "name": "requests", "kind": "api", "aggregation": "count", "unit": "requests"},
    )
    assert db.session.scalar(select(Metric.name).where(Metric.plan_id == plan.id)) == "requests"
    for path in ("/admin/metric/", "/admin/usageevent/", "/admin/usagedaily/", "/admin/periodicrun/"):
        assert client.get(path).status_code == 200, path


def test_bulk_ingestion_counts_each_event_once_on_both_databases(any_app, tmp_path):
    from app.models import UsageCheckpoint

    user = make_user(userid="ada")
    when = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=1)
    log = tmp_path / "bulk.log"
    write_lines(log, [event(id=f"bulk{i}", when=when, data={"n": i}) for i in range(50)] + [event(id="bulk0")], "w")
    report = ingest_path(str(log), batch=20)
    assert (report.inserted, report.duplicates, report.malformed) == (50, 1, 0)
    db.session.execute(delete(UsageCheckpoint))  # forget how far it read: the ids still decide
    db.session.commit()
    report = ingest_path(str(log), batch=20)
    assert (report.inserted, report.duplicates) == (0, 51) and count_events() == 50
    stored = db.session.get(UsageEvent, "bulk7")
    assert stored.time == when and stored.user_id == user.id and stored.data == {"n": 7}
    assert stored.end == when + timedelta(seconds=2) and stored.duration == 2.0 and stored.source == "log"


def test_a_batch_meeting_stored_ids_falls_back_and_loses_nothing(any_app, tmp_path):
    """PostgreSQL COPYs a batch straight into the table; when the unique key refuses one row the savepoint
    goes and the batch takes the ON CONFLICT path: the new rows of it are kept, the stored one counts once."""
    make_user(userid="ada")
    assert record([event(id="bulk25", data={"n": "first"})], "api").count("accepted") == 1
    db.session.commit()
    log = tmp_path / "bulk.log"
    write_lines(log, [event(id=f"bulk{i}", data={"n": i}) for i in range(50)], "w")
    report = ingest_path(str(log), batch=20)  # 0-19 new, 20-39 meets bulk25, 40-49 new
    assert (report.inserted, report.duplicates) == (49, 1) and count_events() == 50
    assert db.session.get(UsageEvent, "bulk25").data == {"n": "first"}  # the stored one stays as it was
    assert db.session.get(UsageEvent, "bulk24").data == {"n": 24}  # the batch it was in is there


def test_a_log_line_id_is_its_start_time_and_hash():
    from app.usage.logfiles import line_id

    first = line_id(b'{"start_dt": "2026-11-28T10:00:00"}', "2026-11-28T10:00:00")
    later = line_id(b'{"start_dt": "2026-11-28T10:00:01"}', "2026-11-28T10:00:01")
    assert first.startswith("log:2026-11-28T10:00:00:") and first < later  # in log order, in key order
    assert line_id(b'{"start_dt": "2026-11-28T10:00:00"}', "2026-11-28T10:00:00") == first
    assert line_id(b'{"start_dt": "2026-11-28T10:00:00", "n": 1}', "2026-11-28T10:00:00") != first
    assert line_id(b"{}", None).startswith("log::") and len(line_id(b"{}", "x" * 500)) == 4 + 32 + 1 + 32


def test_bulk_ingestion_keeps_tabs_newlines_backslashes_and_refuses_nul(any_app, tmp_path):
    """The bulk path writes COPY's text format itself: every character that format escapes comes back as it
    went in; a NUL, which no text column can store, is a malformed line, not a failed batch."""
    make_user(userid="ada")
    tricky = "a\tb\nc\\d\re \\N"
    lines = [
        event(id=f"id {tricky}", kind="k\t\\", action="a\\nb", client_ip="\\N", data={"x": tricky, "y": "\\u0000"}),
        event(id="plain", data={"nested": [{"deep": "é ✓"}]}, quantity=0.25, plan=None),
        event(id="nul in data", data={"x": "a\x00b"}),
        event(id="nul in kind", kind="a\x00b"),
        event(id="nul\x00in id"),
    ]
    log = tmp_path / "tricky.log"
    write_lines(log, lines, "w")
    report = ingest_path(str(log))
    assert (report.inserted, report.malformed) == (2, 3)
    reasons = " ".join(reason for _, _, reason in report.errors)
    assert "NUL" in reasons and [line for _, line, _ in report.errors] == [3, 4, 5]
    stored = db.session.get(UsageEvent, f"id {tricky}")
    assert (stored.kind, stored.action, stored.client_ip) == ("k\t\\", "a\\nb", "\\N")
    assert stored.data == {"x": tricky, "y": "\\u0000"} and stored.end - stored.time == timedelta(seconds=2)
    plain = db.session.get(UsageEvent, "plain")
    assert plain.data == {"nested": [{"deep": "é ✓"}]} and plain.quantity == 0.25 and plain.plan_id is None


def test_a_failing_writer_stops_the_ingest_with_its_error_and_keeps_the_checkpoint(any_app, tmp_path, monkeypatch):
    from app.models import UsageCheckpoint
    from app.usage import logfiles

    make_user(userid="ada")
    log = tmp_path / "bulk.log"
    write_lines(log, [event(id=f"w{i}") for i in range(30)], "w")
    calls = []

    def insert_then_fail(rows, direct=True):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(rows, direct)

    real = logfiles.insert_many
    monkeypatch.setattr(logfiles, "insert_many", insert_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        ingest_path(str(log), batch=10)
    db.session.rollback()
    assert count_events() == 10  # the first batch, committed with its checkpoint
    checkpoint = db.session.scalar(select(UsageCheckpoint))
    assert checkpoint.lines == 10
    monkeypatch.setattr(logfiles, "insert_many", real)
    report = ingest_path(str(log), batch=10)  # on from the checkpoint: nothing twice, nothing skipped
    assert (report.read, report.inserted, report.duplicates) == (20, 20, 0) and count_events() == 30


def test_a_failing_reader_stops_the_writer(any_app, tmp_path, monkeypatch):
    from app.usage import logfiles

    make_user(userid="ada")
    log = tmp_path / "bulk.log"
    write_lines(log, [event(id=f"r{i}") for i in range(30)], "w")

    def broken(*args):
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(logfiles, "to_row", broken)
    with pytest.raises(RuntimeError, match="a bug in the reader"):
        ingest_path(str(log), batch=10)
    assert not [t for t in threading.enumerate() if t.name == "usage-writer"]


def test_events_the_database_cannot_hold_are_rejected_with_the_reason(ada):
    late = NOW - timedelta(days=70)
    outcome = record(
        [
            event(id="huge", data={"n": 10**30}),
            event(id="deep", data=json.loads('{"a":' * 300 + "1" + "}" * 300)),
            event(id="far", when=late, end_dt="9999-12-31T00:00:00"),
            event(id="fine"),
        ],
        "batch",
    )
    db.session.commit()
    assert [r["status"] for r in outcome.results] == ["rejected"] * 3 + ["accepted"]
    assert "data: cannot be stored" in outcome.results[0]["reason"]
    assert "end_dt: too far after start_dt" in outcome.results[2]["reason"]


def test_ingest_on_an_in_memory_sqlite_writes_in_the_reading_thread(redis_server, tmp_path, monkeypatch):
    from app.usage.logfiles import Writer

    from .conftest import make_app

    threads, run = [], Writer.run

    def spied(self, app):  # what a writer thread runs
        threads.append(app)
        run(self, app)

    monkeypatch.setattr(Writer, "run", spied)
    app = make_app("sqlite://", redis_server.url, tmp_path)
    with app.app_context():
        db.create_all()
        make_user(userid="ada")
        log = tmp_path / "bulk.log"
        write_lines(log, [event(id=f"m{i}") for i in range(30)], "w")
        report = ingest_path(str(log), batch=10)
        assert (report.inserted, report.duplicates) == (30, 0) and count_events() == 30
        assert threads == []  # no writer thread was started
        db.session.remove()
