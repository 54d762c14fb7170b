"""The trace journal on SQLite (a file) and on the machine's real PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from esb.journal import Journal

POSTGRES_DSN = os.environ.get("ESB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1/test")


def _postgres_or_skip() -> str:
    try:
        import psycopg

        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except Exception as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {POSTGRES_DSN}: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")
    return POSTGRES_DSN


@pytest.fixture(params=["sqlite", "postgres"])
def journal_target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "journal.sqlite")
    return _postgres_or_skip()


def test_every_step_of_a_message_is_traced_in_order(journal_target):
    journal = Journal(journal_target)
    message_id, correlation_id = str(uuid.uuid4()), f"PO-{uuid.uuid4().hex[:8]}"
    journal.record("received", message_id=message_id, route="r1", correlation_id=correlation_id)
    journal.record("published", message_id=message_id, route="r1", correlation_id=correlation_id)
    journal.record("retried", message_id=message_id, route="r1", destination="wms",
                   correlation_id=correlation_id, detail="Retryable: HTTP 503")
    journal.record("delivered", message_id=message_id, route="r1", destination="wms",
                   correlation_id=correlation_id)
    assert journal.flush()

    by_id = journal.trace(message_id=message_id)
    by_correlation = journal.trace(correlation_id=correlation_id)
    journal.close()

    assert [entry.step for entry in by_id] == ["received", "published", "retried", "delivered"]
    assert by_id == by_correlation
    assert by_id[2].detail == "Retryable: HTTP 503" and by_id[2].destination == "wms"
    assert by_id[0].at.endswith("+00:00")


def test_the_journal_survives_a_restart(tmp_path):
    path = tmp_path / "journal.sqlite"
    message_id = str(uuid.uuid4())
    first = Journal(path)
    first.record("received", message_id=message_id, route="r1")
    first.close()  # close writes what was queued

    second = Journal(path)
    entries = second.trace(message_id=message_id)
    second.close()

    assert [entry.step for entry in entries] == ["received"]


def test_entries_older_than_the_retention_are_deleted(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    message_id = str(uuid.uuid4())
    journal.record("received", message_id=message_id, route="r1")
    journal.flush()

    kept = journal.delete_older_than(3600)
    deleted = journal.delete_older_than(0)
    remaining = journal.trace(message_id=message_id)
    journal.close()

    assert (kept, deleted, remaining) == (0, 1, [])


def test_an_unknown_step_is_refused(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    with pytest.raises(ValueError, match="unknown trace step 'recieved'"):
        journal.record("recieved", message_id="x", route="r1")
    journal.close()


def test_a_journal_that_cannot_be_opened_fails_at_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception):  # noqa: B017 - sqlite3 or OS error, either is a clear failure
        Journal(blocker / "journal.sqlite")


def test_last_errors_gives_each_route_its_newest_error_of_the_window(journal_target):
    journal = Journal(journal_target)
    route, quiet = f"r-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    now = time.time()
    journal.record("retried", message_id="m1", route=route, destination="wms", detail="HTTP 503", at=now - 2)
    journal.record("dead_lettered", message_id="m1", route=route, destination="wms", detail="HTTP 400",
                   at=now - 1)
    journal.record("delivered", message_id="m2", route=route, destination="wms", at=now)
    journal.record("rejected", message_id="m3", route=quiet, detail="too old", at=now - 7200)
    assert journal.flush()

    errors = journal.last_errors(window=3600)
    journal.close()

    assert errors[route]["step"] == "dead_lettered" and errors[route]["detail"] == "HTTP 400"
    assert errors[route]["destination"] == "wms" and errors[route]["at"].endswith("+00:00")
    assert quiet not in errors


def test_activity_counts_deliveries_and_errors_per_minute_of_the_last_hour(tmp_path):
    journal = Journal(tmp_path / "activity.sqlite")
    now = time.time()
    journal.record("delivered", message_id="m1", route="r", destination="d", at=now)
    journal.record("received", message_id="m1", route="r", at=now)  # not a delivery, not an error
    journal.record("dead_lettered", message_id="m2", route="r", destination="d", at=now - 600)
    journal.record("rejected", message_id="m3", route="r", at=now - 7200)  # older than the hour
    journal.flush()

    activity = journal.activity()
    journal.close()
    assert activity["bucket_seconds"] == 60 and len(activity["delivered"]) == len(activity["errors"]) == 60
    assert activity["delivered"][-1] == 1 and sum(activity["delivered"]) == 1
    assert sum(activity["errors"]) == 1
    assert activity["errors"].index(1) in (49, 50)  # ten minutes before the last bucket
