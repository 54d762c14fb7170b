"""The fault scenarios, each a function of its size: `tests/reliability/` runs them short,
`bench/chaos` long. Each returns the `Result` counted at the end (see `harness.settle`)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from esb.journal import JOURNAL_FILE_NAME, Journal
from tests.reliability.harness import Bus, Result, Senders, Target, settle


@contextlib.contextmanager
def running(directory: Path, broker_url: str | None, *, data_dir: Path | None = None, attempts: int = 40):
    """A target and a bus delivering to it; cleaned up (process, queues, server) afterwards."""
    target = Target()
    bus = Bus(directory, target.url, broker_url, data_dir=data_dir, attempts=attempts)
    try:
        yield target, bus.start()
    finally:
        bus.stop()
        bus.delete_queues()
        target.close()


def kill_a_worker(directory: Path, broker_url: str | None, count: int, *, kills: int = 3,
                  clients: int = 8) -> Result:
    """kill -9 of `esb run` `kills` times while clients post; each time it is started again at once."""
    with running(directory, broker_url) as (target, bus):
        senders = Senders(bus, count, clients=clients).start()
        faults = []
        for kill in range(kills):
            senders.wait_for(count * (kill + 1) // (kills + 1))
            faults.append(time.monotonic())
            bus.kill9()
            bus.start()
        name = f"kill -9 of `esb run` ×{kills} ({'RabbitMQ' if broker_url else 'embedded'})"
        # on the embedded transport, what the killed process held waits for its lease (30 s)
        result = settle(name, senders, target, bus, timeout=120 if broker_url else 180)
        result.recovery_seconds = [senders.recovery_after(fault) for fault in faults]
        return result


def broker_connections_closed(directory: Path, broker_url: str, count: int, *, times: int = 3,
                              clients: int = 8) -> Result:
    """The broker closes the bus's connections (`rabbitmqctl close_connection`) `times` times."""
    spacing = 6.0  # seconds between two closes; rabbitmqctl itself takes one to three of them
    seconds = spacing * (times + 1)  # paced, so that documents are still being sent after each close
    with running(directory, broker_url) as (target, bus):
        senders = Senders(bus, count, clients=clients, rate=count / seconds).start()
        faults = []
        for time_ in range(times):
            time.sleep(max(0.0, senders.started + spacing * (time_ + 1) - time.monotonic()))
            assert bus.close_broker_connections() > 0, "found no connection of the bus to close"
            if senders.done() < count:  # a close after the last send has no recovery to measure
                faults.append(time.monotonic())  # once closed: rabbitmqctl itself takes a second or two
        assert faults, "every close came after the last send: nothing measured the recovery"
        result = settle(f"broker closes the connections ×{times}", senders, target, bus)
        result.recovery_seconds = [senders.recovery_after(fault) for fault in faults]
        return result


def target_down_slow_refusing(directory: Path, broker_url: str | None, count: int, *, refused_every: int = 10,
                              phase_seconds: float = 3.0, clients: int = 8) -> tuple[Result, int]:
    """The target is down (503), then slow, and answers 400 for every `refused_every`-th document;
    then it is fixed and the dead letters replayed with `esb dlq replay --all`. Returns the final
    result and how many were dead-lettered before the replay."""
    with running(directory, broker_url) as (target, bus):
        target.refuse = {f"CH-{n:06d}" for n in range(0, count, refused_every)}
        target.mode = "down"
        senders = Senders(bus, count, clients=clients).start()
        time.sleep(phase_seconds)
        target.mode = "slow"
        time.sleep(phase_seconds)
        target.mode = "ok"
        before = settle("", senders, target, bus, timeout=180)
        dead_before_replay = before.dead_lettered
        target.refuse.clear()
        fixed = time.monotonic()
        bus.replay_with_the_cli()
        deadline = fixed + 120
        while len(target.documents()) < before.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        recovered = time.monotonic() - fixed
        result = settle(f"target down {phase_seconds:g} s, slow {phase_seconds:g} s, 400 for 1 in "
                        f"{refused_every}; fixed, replayed", senders, target, bus)
        result.recovery_seconds = [recovered]
        return result, dead_before_replay


def mount_small_disk(path: Path, size: str = "16m") -> None:
    """A tmpfs of `size` at `path` (root only); raises CalledProcessError where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True,
                   capture_output=True, text=True)


def fill(path: Path) -> Path:
    """Write a file into `path` until its disk is full."""
    filler = path / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"\0" * 1_048_576)
            handle.flush()
    return filler


def disk_full(directory: Path, broker_url: str | None, count: int, *, full_seconds: float = 3.0,
              clients: int = 8) -> tuple[Result, dict[int, int], int]:
    """The data dir's disk (journal, idempotency keys, the embedded file) fills up while clients
    post, then space comes back. Returns the result, the answers to requests made while it was
    full ({status: count}), and how many accepted ids the journal does not trace."""
    data = directory / "data"
    mount_small_disk(data, f"{16 + count // 200}m")  # the journal and the keys take about 1.5 kB a document
    try:
        with running(directory, broker_url, data_dir=data) as (target, bus):
            # paced, so that documents are still being posted while the disk is full
            senders = Senders(bus, count, clients=clients, rate=count / (3 * full_seconds + 2)).start()
            senders.wait_for(count // 3)
            filler = fill(data)
            full_since = time.monotonic()
            time.sleep(full_seconds)
            full_until = time.monotonic()
            filler.unlink()
            result = settle(f"data dir's disk full for {full_seconds:g} s", senders, target, bus)
            result.recovery_seconds = [senders.recovery_after(full_until)]
            answers = senders.statuses_between(full_since, full_until)
            accepted = set(senders.ids.values())
        journal = Journal(data / JOURNAL_FILE_NAME)
        try:
            untraced = sum(1 for message_id in accepted if not journal.trace(message_id=message_id))
        finally:
            journal.close()
        return result, answers, untraced
    finally:
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
