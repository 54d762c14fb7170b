"""The dashboard's operations console in a real headless browser (Debian's chromium, driven by
playwright as in `test_monitoring_dashboard`) on a real bus and the real RabbitMQ: the dead-letter
browser (browse, replay one, replay the selected, purge after typing the route's name), trace
search, and the open alerts and inventory accuracy panels."""

from __future__ import annotations

from esb.accuracy import AccuracyHistory
from esb.aggregator import state_target
from tests.integration.test_monitoring_api import (
    ADMIN_KEY,
    VIEWER_KEY,
    api,
    dead_letter_orders,
    order,
    wait_until,
)
from tests.integration.test_monitoring_dashboard import ARTIFACTS, browser, bus, open_dashboard, target
from tests.integration.test_rest_runtime import post

__all__ = ["browser", "bus", "target"]  # fixtures, imported to be used here

HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
"""Text a sender put in a document: shown as it is, never run or parsed as HTML."""


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def open_dead_letters(page, route: str):
    """Open the dead-letter browser of `route` from its row of the routes table."""
    page.locator(f'tr[data-route="{route}"]:not(.destination) button.browse').click()
    page.locator("#dlq-status", has_text="dead letter").wait_for(timeout=10_000)
    return page.locator("#dlq-table tbody")


def audit(runtime) -> list[dict]:
    return api(runtime, "GET", "/api/audit", key=ADMIN_KEY).json()["entries"]


def test_a_dead_letter_is_browsed_with_its_error_headers_and_body_shown_as_text(browser, bus, target,
                                                                              unique_name):
    target.script["/wms/orders"] = [400]
    document = order()
    document["notes"] = HOSTILE
    message_id = post(bus, unique_name, document).json()["id"]
    wait_until(lambda: len(bus.transport.dead_letters(unique_name, "wms")) == 1)

    page = open_dashboard(browser, bus, ADMIN_KEY)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    letters = open_dead_letters(page, unique_name)
    row = letters.locator(f'tr.dead-letter[data-id="{message_id}"]')
    row.wait_for(timeout=10_000)
    assert row.locator(".destination").inner_text() == "wms"
    assert row.locator(".attempts").inner_text() == "1"
    assert row.locator(".reason").inner_text() == "permanent"
    assert "400" in row.locator(".last-error").inner_text()
    row.locator("button.details").click()
    details = letters.locator(f'tr.dead-letter-details[data-id="{message_id}"]')
    assert details.is_visible()
    assert "<img src=x onerror=" in details.locator("pre.body").inner_text()
    assert '"esb-attempts": 1' in details.locator("pre.headers").inner_text()
    screenshot(page, "dashboard-dead-letters.png")

    # the body's markup made no element and ran nothing; the key went in no URL
    assert page.locator("#dead-letters img, #dead-letters script").count() == 0
    assert page.locator("img").count() == 0 and page.title() == "esb dashboard"
    assert requested and not [url for url in requested if ADMIN_KEY in url]
    assert ADMIN_KEY not in page.url and page.violations == []
    # entered once per session: a reload of the tab asks for no key again
    page.reload()
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    assert page.input_value("#key") == ""
    page.close()


def test_a_viewer_browses_dead_letters_but_has_no_replay_or_purge(browser, bus, target, unique_name):
    dead_letter_orders(bus, target, unique_name, 1)

    page = open_dashboard(browser, bus, VIEWER_KEY)
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    letters = open_dead_letters(page, unique_name)

    assert letters.locator("tr.dead-letter").count() == 1
    assert letters.locator("input.select, button.replay-one").count() == 0
    assert page.locator("#dlq-replay-all").is_hidden() and page.locator("#dlq-purge-all").is_hidden()
    page.select_option("#dlq-destination", "archive")  # one destination's queue only
    empty = f"No dead letters in route {unique_name} destination archive"
    page.locator("#dlq-status", has_text=empty).wait_for(timeout=10_000)
    page.select_option("#dlq-destination", "wms")
    page.locator("#dlq-status", has_text="1–1 of 1").wait_for(timeout=10_000)
    page.close()


def test_an_admin_replays_one_dead_letter_then_the_selected_ones(browser, bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 4)

    page = open_dashboard(browser, bus, ADMIN_KEY)
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    letters = open_dead_letters(page, unique_name)
    letters.locator(f'tr.dead-letter[data-id="{ids[0]}"] button.replay-one').click()

    page.locator("#message", has_text="Replayed 1 dead letter").wait_for(timeout=10_000)  # list reloaded
    target.wait_for("/wms/orders", 5)  # 4 refused, then the one replayed
    assert letters.locator(f'tr.dead-letter[data-id="{ids[0]}"]').count() == 0
    assert letters.locator("tr.dead-letter").count() == 3
    assert page.locator("#dlq-replay-selected").is_disabled()

    for chosen in ids[1:3]:
        letters.locator(f'tr.dead-letter[data-id="{chosen}"] input.select').check()
    screenshot(page, "dashboard-dead-letters-selected.png")
    page.click("#dlq-replay-selected")

    page.locator("#message", has_text="Replayed 2 dead letter").wait_for(timeout=10_000)  # list reloaded
    assert [letters.locator("tr.dead-letter").nth(n).get_attribute("data-id")
            for n in range(letters.locator("tr.dead-letter").count())] == [ids[3]]
    delivered = target.wait_for("/wms/orders", 7)
    assert {call["headers"]["Idempotency-Key"] for call in delivered[4:]} == set(ids[:3])
    # read once the page is done reading: a browse of a RabbitMQ queue holds what it read meanwhile
    assert [d.message_id for d in bus.transport.dead_letters(unique_name, "wms")] == [ids[3]]
    replays = [e for e in audit(bus) if e["action"] == "dead-letters.replay"]
    assert [e["who"] for e in replays] == ["ops", "ops"]
    assert sorted(replays[0]["target"]["ids"]) == sorted(ids[1:3]) and replays[1]["target"]["ids"] == [ids[0]]
    assert page.violations == []
    page.close()


def test_an_admin_purges_only_after_typing_the_route_name(browser, bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 3)

    page = open_dashboard(browser, bus, ADMIN_KEY)
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    letters = open_dead_letters(page, unique_name)
    # asked, then cancelled: nothing purged
    letters.locator(f'tr.dead-letter[data-id="{ids[0]}"] input.select').check()
    page.click("#dlq-purge-selected")
    assert "1 selected dead letter" in page.inner_text("#purge-question")
    page.click("#purge-cancel")
    assert page.locator("#purge-confirmation").is_hidden()
    assert len(bus.transport.dead_letters(unique_name, "wms")) == 3

    page.click("#dlq-purge-all")
    assert page.locator("#purge-confirm").is_disabled()
    page.fill("#purge-typed", unique_name + "x")
    assert page.locator("#purge-confirm").is_disabled()
    page.fill("#purge-typed", unique_name)
    screenshot(page, "dashboard-purge-confirmation.png")
    page.click("#purge-confirm")

    page.locator("#message", has_text="Purged 3 dead letter").wait_for(timeout=10_000)
    assert "No dead letters" in page.inner_text("#dlq-status")
    assert bus.transport.dead_letters(unique_name, "wms") == []
    purge = audit(bus)[0]
    assert purge["action"] == "dead-letters.purge" and purge["who"] == "ops"
    assert purge["target"]["ids"] == "all" and sorted(purge["outcome"]["ids"]) == sorted(ids)
    assert page.violations == []
    page.close()


def test_a_trace_search_shows_every_hop_of_a_document_or_says_nothing_was_found(browser, bus, target,
                                                                              unique_name):
    document = order()
    message_id = post(bus, unique_name, document).json()["id"]
    target.wait_for("/wms/orders", 1)
    target.wait_for("/archive/orders", 1)
    wait_until(lambda: [h["step"] for h in api(bus, "GET", "/api/trace", params={"message_id": message_id})
                        .json().get("hops", [])].count("delivered") == 2)

    page = open_dashboard(browser, bus, VIEWER_KEY)
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    page.select_option("#trace-kind", "document_number")
    page.fill("#trace-value", document["order_number"])
    page.click("#trace-form button")

    page.locator('#trace-status[data-outcome="hit"]').wait_for(timeout=10_000)
    hops = page.locator("#trace-hops tr.hop")
    steps = [hops.nth(n).get_attribute("data-step") for n in range(hops.count())]
    assert steps[:2] == ["received", "published"] and steps.count("delivered") == 2
    assert {hops.nth(n).locator(".id").inner_text() for n in range(hops.count())} == {message_id}
    assert "1 message(s)" in page.inner_text("#trace-status")
    screenshot(page, "dashboard-trace.png")

    page.select_option("#trace-kind", "message_id")
    page.fill("#trace-value", f"no-such-{unique_name}")
    page.click("#trace-form button")
    page.locator('#trace-status[data-outcome="miss"]').wait_for(timeout=10_000)
    assert "No trace for message id" in page.inner_text("#trace-status")
    assert page.locator("#trace-hops").is_hidden()
    page.close()


def test_the_business_panels_show_inventory_accuracy_and_open_alerts_or_not_available(browser, bus):
    history = AccuracyHistory(state_target(bus.options.data_dir, bus.options.journal))
    history.record({"warehouse": "WH1", "as_of": "2026-11-24T18:00:00+01:00", "accuracy": "0.975",
                    "compared_lines": 40, "book_snapshot_id": "B1", "shelf_snapshot_id": "S1",
                    "lines": [{"sku": "12345", "uom": "EA", "book_quantity": "10", "shelf_quantity": "9",
                               "difference": "-1"}]})

    page = open_dashboard(browser, bus, VIEWER_KEY)
    accuracy = page.locator('#accuracy-table tr[data-warehouse="WH1"]')
    accuracy.wait_for(timeout=10_000)
    assert accuracy.locator(".accuracy-value").inner_text() == "97.5 %"

    alerts = api(bus, "GET", "/api/reports/open-alerts")
    if alerts.status_code == 404:  # the open-alerts report is not served by this bus (yet)
        page.locator('#alerts-status[data-state="not-available"]').wait_for(timeout=10_000)
        assert "not available" in page.inner_text("#alerts-status")
    else:
        page.locator('#alerts-status[data-state="available"]').wait_for(timeout=10_000)
        assert page.locator("#alerts-list li").count() == len(alerts.json()["items"])
    screenshot(page, "dashboard-business.png")
    page.close()
