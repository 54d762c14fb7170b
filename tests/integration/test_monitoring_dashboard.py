"""The dashboard in a real headless browser (Debian's chromium driven by playwright) on a real bus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.integration.test_monitoring_api import (
    ADMIN_KEY,
    VIEWER_KEY,
    dead_letter_orders,
    start_monitored_bus,
    target,
    wait_until,
)
from tests.integration.test_rest_runtime import _delete_queues

__all__ = ["target"]  # a fixture, imported to be used here

pytestmark = pytest.mark.broker

CHROMIUM = os.environ.get("ESB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = PROJECT / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    """Chromium via playwright: skips on a developer machine without it, fails under CI."""
    missing = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright; no `playwright install` needed)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def bus(tmp_path, unique_name, target, broker_url):
    runtime = start_monitored_bus(tmp_path, unique_name, target.url, broker_url)
    yield runtime
    runtime.stop()
    _delete_queues(broker_url, runtime)


def open_dashboard(browser, runtime, key: str):
    page = browser.new_page(viewport={"width": 1400, "height": 600})
    page.violations = []  # what the Content-Security-Policy blocked: nothing, or the page is broken
    page.on("console", lambda message: page.violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{runtime.server.url}/dashboard")
    page.fill("#key", key)
    page.click("#login button")
    return page


def test_the_dashboard_shows_each_route_and_an_admin_replays_its_dead_letters(browser, bus, target,
                                                                              unique_name):
    dead_letter_orders(bus, target, unique_name, 2)
    bus.journal.flush()

    page = open_dashboard(browser, bus, ADMIN_KEY)
    row = page.locator(f'tr[data-route="{unique_name}"]:not(.destination)')
    row.wait_for(timeout=10_000)
    destination = page.locator(f'tr.destination[data-route="{unique_name}"][data-destination="wms"]')
    assert destination.locator(".destination-dlq").inner_text() == "DLQ 2"
    assert destination.locator(".queue-depth").inner_text() == "queue 0"
    assert destination.locator(".retry-depth").inner_text() == "retry 0"
    assert destination.locator(".p50").inner_text() == "p50 –"  # nothing delivered yet
    # the charts of the last hour: the two refused deliveries are errors, the archive got both
    errors = page.locator("#errors-chart[data-total]")
    errors.wait_for(state="attached", timeout=10_000)
    assert errors.get_attribute("data-total") == "2" and errors.locator("rect").count() == 60
    assert page.locator("#delivered-chart").get_attribute("data-total") == "2"

    assert row.locator(".dlq-depth").inner_text() == "2"
    assert row.locator(".errors").inner_text() == "2"
    assert "400" in row.locator(".error").inner_text()
    assert "connected" in page.inner_text("#status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.replay").click()
    # a locator, not wait_for_function: the page's Content-Security-Policy forbids eval
    page.locator("#message", has_text="Replayed 2").wait_for(timeout=10_000)
    target.wait_for("/wms/orders", 4)  # 2 refused, then the 2 replayed
    wait_until(lambda: bus.transport.dead_letters(unique_name, "wms") == [])
    assert page.violations == []
    page.close()


def test_a_viewer_sees_the_routes_without_replay_buttons_and_a_bad_key_is_refused(browser, bus, unique_name):
    page = open_dashboard(browser, bus, VIEWER_KEY)
    page.locator(f'tr[data-route="{unique_name}"]:not(.destination)').wait_for(timeout=10_000)
    assert page.locator("button.replay").count() == 0
    page.close()

    page = open_dashboard(browser, bus, "wrong")
    page.locator("#status", has_text="Key refused").wait_for(timeout=10_000)
    assert page.locator("#routes").is_hidden()
    page.close()
