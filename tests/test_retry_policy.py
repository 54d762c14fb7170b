"""Retry policies and durations from the route file."""

from __future__ import annotations

import pytest

from esb.durations import parse_duration
from esb.retry import DEFAULT_ATTEMPTS, RetryPolicy


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("5s", 5), ("2m", 120), ("1h", 3600), (3, 3),
                                               ("1.5s", 1.5), ("10", 10)])
def test_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 sec", "-1", "s", "", True, -2])
def test_a_bad_duration_says_what_is_accepted(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_last_backoff_delay_repeats_when_attempts_outnumber_it():
    policy = RetryPolicy.from_config({"attempts": 6, "backoff": ["1s", "5s", "30s"]})
    assert [policy.delay(n) for n in range(1, policy.retries + 1)] == [1, 5, 30, 30, 30]
    assert policy.distinct_delays() == (1, 5, 30)


def test_a_route_without_a_retry_block_gets_the_default_policy():
    assert RetryPolicy.from_config(None).attempts == DEFAULT_ATTEMPTS


def test_one_attempt_means_no_retry_queue():
    assert RetryPolicy.from_config({"attempts": 1}).distinct_delays() == ()
