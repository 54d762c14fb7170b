"""Short versions of the fault scenarios (the long ones: `python -m bench.chaos`), on real
`esb run` processes, the real RabbitMQ (or the embedded file) and a real target on loopback that
honours `Idempotency-Key`. Each ends with the counts: every document sent is delivered or
dead-lettered, none is lost, and none reaches the target under a second message id.

`rabbitmqctl stop_app` of the shared broker is never used here; see ESB_TEST_BROKER_RESTART in
tests/integration for that."""

from __future__ import annotations

import math
import os
import subprocess

import pytest

from tests.reliability import scenarios

pytestmark = pytest.mark.broker


def assert_nothing_lost_nor_doubled(result) -> None:
    assert result.sent == result.delivered + result.dead_lettered, result
    assert result.lost == 0 and result.duplicated_new_id == 0, result
    assert all(not math.isnan(seconds) for seconds in result.recovery_seconds), result


def test_kill_9_of_the_bus_three_times_loses_nothing_and_gives_no_document_a_second_id(tmp_path, broker_url):
    result = scenarios.kill_a_worker(tmp_path, broker_url, 240, kills=3)

    assert_nothing_lost_nor_doubled(result)
    assert (result.sent, result.delivered) == (240, 240)


def test_kill_9_on_the_embedded_transport_answers_reposts_after_the_restart(tmp_path):
    # a re-post of a key the killed process had claimed is published again under its id at once;
    # it used to wait for the claim to go stale (30 s) and answer 503 meanwhile
    result = scenarios.kill_a_worker(tmp_path, None, 120, kills=1)

    assert_nothing_lost_nor_doubled(result)
    assert result.delivered == 120


def test_connections_closed_by_the_broker_lose_nothing(tmp_path, broker_url, rabbitmqctl):
    result = scenarios.broker_connections_closed(tmp_path, broker_url, 240, times=2)

    assert_nothing_lost_nor_doubled(result)
    assert result.delivered == 240


def test_a_target_down_slow_and_refusing_some_gets_everything_once_fixed_and_replayed(tmp_path, broker_url):
    result, dead_before_replay = scenarios.target_down_slow_refusing(tmp_path, broker_url, 100,
                                                                     refused_every=10, phase_seconds=2.0)

    assert dead_before_replay == 10  # the refused ones, dead-lettered at once, not retried
    assert_nothing_lost_nor_doubled(result)
    assert (result.delivered, result.dead_lettered) == (100, 0)


@pytest.fixture
def may_mount(tmp_path):
    probe = tmp_path / "probe"
    try:
        scenarios.mount_small_disk(probe, "1m")
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        message = f"cannot mount a small tmpfs here (needs root): {getattr(error, 'stderr', error)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(["umount", str(probe)], check=True)


def test_a_full_disk_answers_503_and_every_202_is_traced(tmp_path, broker_url, may_mount):
    result, answers_while_full, untraced = scenarios.disk_full(tmp_path, broker_url, 150, full_seconds=2.0)

    assert answers_while_full.get(503, 0) > 0, answers_while_full
    assert untraced == 0
    assert_nothing_lost_nor_doubled(result)
    assert result.delivered == 150
