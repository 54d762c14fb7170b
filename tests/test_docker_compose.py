"""docker-compose.yml, checked without docker: the services the README promises, wired to each
other by name, the bus given every variable the shipped routes.yaml needs, the simulators and the
bus sharing their credentials and the WMS's export directory; and the simulators' entry point runs."""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import urlparse

import pytest
import requests
import yaml

from esb.config import check_config
from tests.conftest import PROJECT

COMPOSE = PROJECT / "docker-compose.yml"
WITH_DEFAULT = re.compile(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}")  # compose's ${VAR:-default}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _environment(service: dict) -> dict[str, str]:
    """The service's environment as compose gives it when no variable is set: the defaults."""
    environment = service.get("environment") or {}
    return {key: WITH_DEFAULT.sub(r"\1", str(value)) for key, value in environment.items()}


def test_it_runs_rabbitmq_with_management_postgresql_the_bus_and_the_simulators(compose):
    services = compose["services"]

    assert set(services) == {"rabbitmq", "postgres", "bus", "simulators"}
    assert "management" in services["rabbitmq"]["image"] and "15672:15672" in services["rabbitmq"]["ports"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["bus"]["build"] == "." and services["bus"]["command"] == ["run"]
    assert services["simulators"]["entrypoint"] == ["python", "-m", "esb.demo.standalone"]
    assert {"rabbitmq", "postgres"} <= set(services["bus"]["depends_on"])
    for name in ("rabbitmq", "postgres"):
        assert services["bus"]["depends_on"][name] == {"condition": "service_healthy"}
        assert services[name]["healthcheck"]["test"]


def test_the_bus_reaches_every_service_by_its_name(compose):
    services = compose["services"]
    environment = _environment(services["bus"])

    hosts = {key: urlparse(value).hostname for key, value in environment.items() if "://" in value}

    assert hosts["ESB_BROKER_URL"] == "rabbitmq" and environment["ESB_BROKER_URL"].startswith("amqp://")
    assert hosts["ESB_JOURNAL"] == "postgres" and environment["ESB_JOURNAL"].startswith("postgresql://")
    assert {hosts[key] for key in ("ERP_URL", "ERP_SOAP_URL", "WMS_URL")} == {"simulators"}
    simulator_ports = {port.split(":")[1] for port in services["simulators"]["ports"]}
    assert {str(urlparse(environment[key]).port) for key in ("ERP_URL", "WMS_URL")} == simulator_ports


def test_the_shipped_routes_check_clean_with_the_bus_environment(compose):
    environment = _environment(compose["services"]["bus"])

    assert "${" not in "".join(environment.values())
    assert check_config(PROJECT / "routes.yaml", environment) == []


def test_the_simulators_and_the_bus_share_credentials_and_the_export_directory(compose):
    bus, simulators = compose["services"]["bus"], compose["services"]["simulators"]
    bus_environment, simulator_environment = _environment(bus), _environment(simulators)

    for key in ("ERP_TOKEN", "ERP_SOAP_USER", "ERP_SOAP_PASSWORD", "WMS_API_KEY"):
        assert bus_environment[key] == simulator_environment[key], key
    for key in ("ERP_SENDER_KEY", "WMS_SENDER_KEY"):  # the keys the simulators send with are the bus's
        assert simulator_environment[key] in bus_environment["ESB_API_KEYS"]
    export = simulators["command"][simulators["command"].index("--export-dir") + 1]
    assert export == bus_environment["WMS_EXPORT_DIR"]
    assert f"wms-export:{export}" in bus["volumes"] and f"wms-export:{export}" in simulators["volumes"]
    named = {volume.split(":")[0] for service in compose["services"].values() for volume in
             service.get("volumes", [])}
    assert named <= set(compose["volumes"])


def test_the_image_has_the_shared_directories_writable_by_its_user(compose):
    dockerfile = (PROJECT / "Dockerfile").read_text()

    for directory in ("/data/wms/out", "/data/reconciliation"):
        assert directory in dockerfile
    assert "chown -R esb /var/lib/esb /data" in dockerfile


def test_the_simulators_entry_point_serves_the_erp_wsdl(tmp_path):
    command = [sys.executable, "-m", "esb.demo.standalone", "--erp-port", "0", "--wms-port", "0",
               "--export-dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        soap = re.search(r"SOAP (\S+)\?wsdl", line)
        assert soap, line
        wsdl = requests.get(f"{soap.group(1)}?wsdl", timeout=10)
        assert wsdl.status_code == 200 and b"GetPurchaseOrderChanges" in wsdl.content
        assert f'location="{soap.group(1)}"'.encode() in wsdl.content
    finally:
        process.terminate()
        process.wait(10)
