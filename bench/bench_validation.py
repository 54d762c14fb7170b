"""How many validations per second: pure `jsonschema` against `SchemaRegistry.validate` (jsonschema-rs).

The document is the 10-line purchase order example of `schemas/purchase_order.v1.json`, parsed as
the bus parses JSON (numbers with a fraction as Decimal). Both validators assert formats and
resolve `$ref`s among the local files only.

    python -m bench.bench_validation [--seconds 2.0]

Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import jsonschema
import referencing
from referencing.jsonschema import DRAFT202012

from esb import jsonfmt
from esb.schemas import DEFAULT_DIRECTORY, SchemaRegistry

DEFAULT_SECONDS = 2.0
"""How long each validator runs, in seconds (after a short warm-up)."""


def purchase_order(registry: SchemaRegistry) -> dict:
    return jsonfmt.loads(json.dumps(registry.schema("purchase_order")["examples"][0]))


def pure_jsonschema_validate() -> Callable[[dict], None]:
    """`validate` of a jsonschema.Draft202012Validator whose `$ref`s resolve in a referencing.Registry."""
    resources = []
    for path in sorted(DEFAULT_DIRECTORY.glob("*.v*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = referencing.Resource.from_contents(schema, default_specification=DRAFT202012)
        resources.append((schema["$id"], resource))
    registry = referencing.Registry().with_resources(resources)
    schema = registry.contents("https://esb.example/schemas/purchase_order.v1.json")
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.validate


def rate(validate: Callable[[dict], None], document: dict, seconds: float) -> float:
    """Validations per second of `validate(document)` over about `seconds`."""
    for _ in range(50):
        validate(document)
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            validate(document)
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="run time of each validator")
    seconds = parser.parse_args().seconds

    registry = SchemaRegistry()
    document = purchase_order(registry)
    registry.validate("purchase_order", document)  # both must accept it, or the figures mean nothing
    pure = pure_jsonschema_validate()
    pure(document)

    pure_rate = rate(pure, document, seconds)
    fast_rate = rate(lambda payload: registry.validate("purchase_order", payload), document, seconds)
    print(f"document: purchase_order v1, {len(document['lines'])} lines, Decimal numbers")
    print(f"jsonschema (pure Python, Draft202012Validator): {pure_rate:>12,.0f} validations/s")
    print(f"SchemaRegistry.validate (jsonschema-rs):        {fast_rate:>12,.0f} validations/s")
    print(f"ratio: {fast_rate / pure_rate:.1f}x")


if __name__ == "__main__":
    main()
