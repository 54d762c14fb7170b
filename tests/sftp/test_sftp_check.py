"""`esb check` on sftp routes: a password written inline is refused, one from ${ENV} is not; the
known_hosts file is required; paths on the server are kept as written."""

from __future__ import annotations

from pathlib import Path

from esb.config import check_config, load_config

ROUTES = """version: 1
systems:
  partner:
    sftp: {{host: sftp.partner.example, user: esb, password: {password}, known_hosts: keys/known_hosts}}
routes:
  - name: partner-orders
    from: {{sftp: {{system: partner, dir: outbound/orders, pattern: "*.csv", per: record}}}}
    to:
      - sftp: {{system: partner, dir: inbound, format: json, name_template: "{{id}}.json"}}
"""


def write(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(password=password))
    return path


def test_an_inline_password_is_a_problem_naming_the_option(tmp_path):
    problems = check_config(write(tmp_path, "hunter2"), {})

    assert [problem.what for problem in problems] == [
        "systems.partner.sftp.password: password is written inline; give it as ${VAR} (an environment "
        "variable), so that no secret is kept in routes.yaml"]


def test_a_password_from_the_environment_is_clean_and_server_paths_stay_as_written(tmp_path):
    path = write(tmp_path, '"${PARTNER_SFTP_PASSWORD}"')

    assert check_config(path, {"PARTNER_SFTP_PASSWORD": "hunter2"}) == []
    config = load_config(path, {"PARTNER_SFTP_PASSWORD": "hunter2"})
    route = config.routes[0]
    assert route.source.options["dir"] == "outbound/orders"
    assert config.systems["partner"].settings["sftp"]["known_hosts"] == str(tmp_path / "keys" / "known_hosts")
