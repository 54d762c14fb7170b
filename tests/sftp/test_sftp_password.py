"""Password login on a real OpenSSH server (`sshd_with_password`): the password comes from the
environment through routes.yaml's ${VAR} (the only place the bus takes a system's secret from),
and a wrong one is one line, with no traceback, in the log and in /readyz."""

from __future__ import annotations

import logging
from pathlib import Path

from esb.config import load_config
from tests.sftp.conftest import SSHD_PASSWORD
from tests.sftp.test_sftp_source import make_source
from tests.test_flatfile_source import Bus


def password_settings(tmp_path: Path, sshd, password: str) -> dict:
    """The sftp block of a system as `esb run` builds it from routes.yaml and the environment."""
    user = sshd.settings()["user"]
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""version: 1
systems:
  partner:
    sftp: {{host: 127.0.0.1, port: {sshd.port}, user: {user}, password: "${{PARTNER_SFTP_PASSWORD}}",
           known_hosts: {sshd.known_hosts}, reconnect_backoff: 0.05}}
routes:
  - name: partner-files
    from: {{sftp: {{system: partner, dir: outbound, pattern: "*.csv"}}}}
    to:
      - file: {{dir: {tmp_path / "out"}}}
""")
    config = load_config(routes, {"PARTNER_SFTP_PASSWORD": password})
    settings = config.systems["partner"].settings["sftp"]
    assert "key_file" not in settings or settings["key_file"] is None
    return settings


def test_a_password_from_the_environment_logs_in_and_the_file_is_picked_up(sshd_with_password, tmp_path):
    inbox = tmp_path / "outbound-from-partner"
    inbox.mkdir()
    (inbox / "x.csv").write_bytes(b"sku,qty\nA,1\n")
    bus = Bus()

    source = make_source(sshd_with_password, inbox, bus,
                         password_settings(tmp_path, sshd_with_password, SSHD_PASSWORD))
    source.poll()

    assert source.readiness() is None
    assert len(bus.published) == 1
    assert (inbox / "processed" / "x.csv").exists()


def test_a_wrong_password_is_one_line_without_a_traceback(sshd_with_password, tmp_path, caplog):
    inbox = tmp_path / "outbound-from-partner"
    inbox.mkdir()
    (inbox / "x.csv").write_bytes(b"sku,qty\nA,1\n")
    bus = Bus()
    caplog.set_level(logging.WARNING)

    source = make_source(sshd_with_password, inbox, bus,
                         password_settings(tmp_path, sshd_with_password, "not the password"))
    source.poll()

    refused = [record for record in caplog.records if "login refused" in record.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None and "\n" not in refused[0].getMessage()
    assert "login refused with the password" in refused[0].getMessage()
    assert "not the password" not in caplog.text  # the secret never reaches a log
    assert "login refused with the password" in source.readiness()
    assert (inbox / "x.csv").exists() and not bus.published
