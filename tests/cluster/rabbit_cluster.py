"""A throw-away 3-node RabbitMQ cluster on this machine, for the cluster tests.

Every node has its own name (`esbtest<N>-<tag>@localhost`), its own AMQP and distribution ports
(free ones), its own data and log directories under a temporary directory and its own Erlang
cookie (HOME points at that directory). The machine's default node (rabbit@localhost, 5672) is
never addressed: every rabbitmqctl call names its node with `-n`, and the machine's
rabbitmq-env.conf (which names rabbit@localhost) is replaced by our own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves, not the wrapper that su's
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Node:
    name: str
    amqp_port: int
    dist_port: int
    base: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"


@dataclass
class RabbitCluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def env(self, node: Node | None = None) -> dict[str, str]:
        env = {**os.environ, "HOME": str(self.root), "RABBITMQ_CONF_ENV_FILE": str(self.root / "env")}
        if node is not None:
            env.update({
                "RABBITMQ_NODENAME": node.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.amqp_port),
                "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(node.base / "log"),
                "RABBITMQ_PID_FILE": str(node.base / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            })
        return env

    def ctl(self, node: Node, *args: str, timeout: float = 90) -> str:
        """`rabbitmqctl -n <node> ...`; raises with its output when it fails."""
        done = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        (self.root / "env").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        (self.root / "enabled_plugins").write_text("[].\n")  # no management, no prometheus
        (self.root / "rabbitmq.conf").write_text(
            "loopback_users = none\ncluster_partition_handling = pause_minority\n"
            "queue_leader_locator = balanced\n")  # quorum queue leaders spread over the nodes
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        for node in self.nodes:
            node.base.mkdir(parents=True)
            subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self.env(node),
                           check=True, capture_output=True, timeout=60)
        for node in self.nodes:
            self.ctl(node, "wait", str(node.base / "pid"), "--timeout", str(START_TIMEOUT),
                     timeout=START_TIMEOUT + 10)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        self.ctl(first, "await_online_nodes", str(len(self.nodes)))

    def stop_app(self, node: Node) -> None:
        self.ctl(node, "stop_app")

    def start_app(self, node: Node) -> None:
        self.ctl(node, "start_app")
        self.ctl(node, "await_startup")

    def partition(self, node: Node) -> None:
        """Cut `node` off from the other nodes: each side is given a different Erlang cookie for
        the other, and their distribution links are dropped, so they cannot connect again (the
        effect of a network partition; rabbitmqctl, with the real cookie, still reaches every node)."""
        others = [other.name for other in self.nodes if other is not node]
        self.ctl(node, "eval", f"[erlang:set_cookie(N, esb_partition_minority) || N <- {_atoms(others)}], "
                               f"[erlang:disconnect_node(N) || N <- {_atoms(others)}], ok.")
        for other in others:
            self.ctl(self.node(other), "eval", f"erlang:set_cookie('{node.name}', esb_partition_majority), "
                                               f"erlang:disconnect_node('{node.name}'), ok.")

    def heal(self, node: Node) -> None:
        """End `partition(node)`: the real cookie again on both sides, and a ping across."""
        others = [other.name for other in self.nodes if other is not node]
        for other in others:
            self.ctl(self.node(other), "eval", f"erlang:set_cookie('{node.name}', erlang:get_cookie()), ok.")
        self.ctl(node, "eval", f"[erlang:set_cookie(N, erlang:get_cookie()) || N <- {_atoms(others)}], "
                               f"[net_adm:ping(N) || N <- {_atoms(others)}], ok.")

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def is_running(self, node: Node) -> bool:
        """Whether RabbitMQ runs on `node` (a paused minority node answers false)."""
        return self.ctl(node, "eval", "rabbit:is_running().").strip() == "true"

    def running_nodes(self) -> list[str]:
        out = self.ctl(self.nodes[0], "eval", "rabbit_nodes:all_running().")
        return sorted(name for name in (n.name for n in self.nodes) if name in out)

    def stop(self) -> None:
        for node in self.nodes:
            try:
                self.ctl(node, "stop", timeout=60)
            except Exception:  # already gone: kill what its pid file names
                pid = node.base / "pid"
                if pid.exists():
                    subprocess.run(["kill", "-9", pid.read_text().strip()], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _atoms(names: list[str]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


def start_cluster(size: int = 3) -> RabbitCluster:
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("erl") is None:
        raise FileNotFoundError(f"no RabbitMQ server under {RABBIT_BIN}")
    root = Path(tempfile.mkdtemp(prefix="esb-rabbit-cluster-"))
    tag = secrets.token_hex(3)
    nodes = [Node(f"esbtest{i}-{tag}@localhost", free_port(), free_port(), root / f"n{i}")
             for i in range(1, size + 1)]
    cluster = RabbitCluster(root, nodes)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
