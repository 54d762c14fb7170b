"""The long fault scenarios (`tests/reliability/` runs them short), printing one table:
scenario, sent, delivered, dead-lettered, lost, duplicated (same id / new id), recovery time.

    python -m bench.chaos [-n 10000] [--broker amqp://guest:guest@127.0.0.1:5672/%2F] [--only kill,close,...]

Scenarios: `kill` (kill -9 of `esb run` x3 on RabbitMQ), `kill-embedded` (x3 on the embedded
transport), `close` (the broker closes the bus's connections x3, `rabbitmqctl close_connection`),
`target` (target down, slow, 400 for 1 in 10, then fixed and replayed with `esb dlq replay`),
`disk` (the data dir's disk full for 5 s; needs root, to mount a tmpfs). Recovery is the time
from the fault to the first 202 of a request sent after it (for `target`: from the replay to the
last delivery). The broker is never stopped (`stop_app`): it is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.conftest import DEFAULT_TEST_BROKER
from tests.reliability import scenarios
from tests.reliability.harness import TABLE_HEADER, Result

SCENARIOS = ("kill", "kill-embedded", "close", "target", "disk")


def run(name: str, directory: Path, broker: str, count: int) -> tuple[Result, str]:
    if name == "kill":
        return scenarios.kill_a_worker(directory, broker, count, kills=3), ""
    if name == "kill-embedded":
        return scenarios.kill_a_worker(directory, None, count, kills=3), ""
    if name == "close":
        return scenarios.broker_connections_closed(directory, broker, count, times=3), ""
    if name == "target":
        result, dead = scenarios.target_down_slow_refusing(directory, broker, count, phase_seconds=5.0)
        return result, f"{dead} dead-lettered before the replay"
    result, answers, untraced = scenarios.disk_full(directory, broker, count, full_seconds=5.0)
    return result, f"answers while full: {answers}; accepted but untraced: {untraced}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="documents per scenario (default 10000)")
    parser.add_argument("--broker", default=DEFAULT_TEST_BROKER)
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated: {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    rows, notes, failed = [], [], False
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as directory:
            try:
                result, note = run(name, Path(directory), args.broker, args.n)
            except Exception as error:  # one scenario's failure still prints the others
                print(f"{name}: failed: {type(error).__name__}: {error}", file=sys.stderr)
                failed = True
                continue
        rows.append(result.row())
        failed = failed or result.lost > 0 or result.duplicated_new_id > 0
        if note:
            notes.append(f"- {result.scenario}: {note}")
        print(result.row(), file=sys.stderr, flush=True)
    print(TABLE_HEADER)
    print("\n".join(rows))
    if notes:
        print("\n" + "\n".join(notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
