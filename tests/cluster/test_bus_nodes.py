"""Two `esb run` nodes on the 3-node RabbitMQ cluster (quorum queues), sharing PostgreSQL for the
journal and the idempotency keys, consuming the same queues as competing consumers. While
documents flow, one bus node is killed (SIGKILL) and started again, and the RabbitMQ node both
are connected to is stopped and started again: every accepted document reaches the target, none
under a second message id, and deliveries resume within seconds (printed: the README's figures).
"""

from __future__ import annotations

import math

import pytest

from tests.cluster.bus_nodes import kill_a_node_and_stop_a_broker, recovery

pytestmark = [pytest.mark.broker, pytest.mark.cluster]


def test_recovery_is_the_end_of_the_longest_pause_after_the_fault_or_the_next_delivery():
    assert recovery([10.25, 10.5, 13.0, 13.25, 14.0], fault=10.0) == 3.0  # paused 2.5 s
    assert recovery([10.25, 10.5, 10.75], fault=10.0) == 0.25  # no pause: the next delivery
    assert recovery([9.0, 12.0, 12.25], fault=10.0) == 2.0  # nothing between the fault and 12.0
    assert math.isnan(recovery([9.0], fault=10.0))


def test_two_bus_nodes_lose_nothing_when_one_is_killed_and_a_rabbitmq_node_stops(tmp_path, rabbit_cluster,
                                                                                   journal_dsn):
    outcome = kill_a_node_and_stop_a_broker(tmp_path, rabbit_cluster, journal_dsn, 400, seconds=20.0)
    result = outcome.result
    print(f"\n{result.row()}\nkill -9 of a bus node: deliveries went on {outcome.kill_recovery:.2f} s after; "
          f"stop_app of the RabbitMQ node (took {outcome.stop_app_seconds:.1f} s): "
          f"{outcome.stop_recovery:.2f} s; delivered per node {outcome.delivered_by}; "
          f"answers other than 2xx {outcome.failed_answers}; {outcome.seconds:.0f} s in all; "
          f"untraced (accepted at, from the kill) {outcome.untraced}; RabbitMQ nodes of each bus node "
          f"before the stop {outcome.brokers_before}, at the end {outcome.brokers_after}\n"
          f"{outcome.timeline()}")

    assert (result.sent, result.delivered, result.dead_lettered) == (400, 400, 0)  # 0 lost
    assert result.lost == 0 and result.duplicated_new_id == 0  # repeats only under the same id
    # every accepted id is in the shared journal but those the killed node had not written yet (it
    # writes its trace every 0.2 s): accepted in the second before the kill, delivered by it too
    assert all(-1.0 < accepted < 0.1 for accepted in outcome.untraced), outcome.untraced
    assert all(delivered > 0 for delivered in outcome.delivered_by)  # both nodes consumed
    first = rabbit_cluster.nodes[0].name
    assert outcome.brokers_before == [{first}, {first}]  # both on the node that was stopped
    assert all(nodes and first not in nodes for nodes in outcome.brokers_after)  # both moved on
    assert set(outcome.failed_answers) <= {0, 503}  # never a 500, never a 202 that was not stored
    assert outcome.kill_recovery < 10 and outcome.stop_recovery < 30
    assert rabbit_cluster.running_nodes() == sorted(node.name for node in rabbit_cluster.nodes)
