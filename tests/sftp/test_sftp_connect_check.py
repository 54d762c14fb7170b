"""`esb check --connect` on SFTP routes, against a real sshd: a server that answers, shows the host
key known_hosts has and takes the login is clean; an unknown host key, a wrong password or a
server that is down is one line per problem, naming the route, with no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.cli import main
from tests.sftp.conftest import SSHD_PASSWORD


def write_routes(tmp_path: Path, sshd, *, known_hosts: Path | None = None, port: int | None = None) -> Path:
    user = sshd.settings()["user"]
    path = tmp_path / "routes.yaml"
    path.write_text(f"""version: 1
systems:
  partner:
    sftp: {{host: 127.0.0.1, port: {port or sshd.port}, user: {user}, password: "${{PARTNER_SFTP_PASSWORD}}",
           known_hosts: {known_hosts or sshd.known_hosts}, connect_timeout: 5s}}
routes:
  - name: partner-files
    from: {{sftp: {{system: partner, dir: {tmp_path / "outbound"}, pattern: "*.csv"}}}}
    to:
      - file: {{dir: {tmp_path / "out"}}}
""")
    return path


def check(path: Path, capsys) -> tuple[int, list[str], str]:
    code = main(["check", "--connect", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_a_server_that_answers_with_the_known_key_and_takes_the_login_is_clean(
        sshd_with_password, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", SSHD_PASSWORD)

    code, lines, _ = check(write_routes(tmp_path, sshd_with_password), capsys)

    assert code == 0, lines
    assert lines[-1].endswith("ok (systems connected)")


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong password", "login refused with the password"),
    ("unknown host key", "is not in"),
    ("server down", "unreachable"),
])
def test_each_problem_on_the_server_is_one_line_naming_the_route(sshd_with_password, tmp_path, capsys,
                                                                  monkeypatch, case, expected):
    monkeypatch.setenv("PARTNER_SFTP_PASSWORD", "Wr0ng-s3cret" if case == "wrong password" else SSHD_PASSWORD)
    known_hosts = None
    if case == "unknown host key":
        known_hosts = tmp_path / "empty_known_hosts"
        known_hosts.write_text("")
    if case == "server down":
        sshd_with_password.kill()

    code, lines, err = check(write_routes(tmp_path, sshd_with_password, known_hosts=known_hosts), capsys)

    assert code == 1
    assert len(lines) == 2, lines
    assert "route partner-files (from): sftp " in lines[0] and expected in lines[0]
    assert lines[1].startswith("1 problem found on the systems of")
    assert "Traceback" not in err and "Wr0ng-s3cret" not in lines[0] + err
