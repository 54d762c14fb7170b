"""The cluster fixture itself: three nodes, one cluster, quorum queues replicated on all three."""

from __future__ import annotations

import pika
import pytest

pytestmark = [pytest.mark.broker, pytest.mark.cluster]


def test_three_nodes_run_as_one_cluster(rabbit_cluster):
    assert rabbit_cluster.running_nodes() == sorted(n.name for n in rabbit_cluster.nodes)
    status = rabbit_cluster.ctl(rabbit_cluster.nodes[2], "cluster_status")
    for node in rabbit_cluster.nodes:
        assert node.name in status


def test_a_quorum_queue_declared_on_one_node_has_members_on_all(rabbit_cluster, unique_name):
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_cluster.nodes[1].url))
    try:
        connection.channel().queue_declare(unique_name, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        connection.close()
    members = rabbit_cluster.ctl(rabbit_cluster.nodes[0], "eval",
                                 'rabbit_amqqueue:info_all(<<"/">>, [name, members]).')
    line = next(part for part in members.split("{resource") if unique_name in part)
    for node in rabbit_cluster.nodes:
        assert node.name in line
