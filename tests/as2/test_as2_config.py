"""Partner profiles in routes.yaml and `esb as2 keys`."""

from __future__ import annotations

import pytest

from adapters.as2.keys import load_certificate
from esb.cli import main
from esb.config import load_config
from esb.errors import ConfigError


def routes(tmp_path, partner_cert: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(f"""
version: 1
systems:
  acme:
    as2: {{as2_id: ACME, our_as2_id: BUS, partner_cert: {partner_cert}, our_cert: keys/bus.crt,
          our_key: keys/bus.key, url: "http://127.0.0.1:9/as2"}}
routes:
  - name: to-acme
    from: {{as2: {{system: acme}}}}
    to:
      - as2: {{system: acme}}
""")
    return str(path)


def test_esb_as2_keys_writes_a_certificate_and_key_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["as2", "keys", "bus", "--dir", str(tmp_path / "keys")]) == 0
    assert load_certificate(tmp_path / "keys" / "bus.crt").subject.rfc4514_string() == "CN=bus"
    assert (tmp_path / "keys" / "bus.key").stat().st_mode & 0o077 == 0

    assert main(["as2", "keys", "bus", "--dir", str(tmp_path / "keys")]) == 1
    assert "exists" in capsys.readouterr().err


def test_a_profile_with_its_files_checks_and_paths_are_relative_to_the_routes_file(tmp_path):
    main(["as2", "keys", "bus", "--dir", str(tmp_path / "keys")])
    main(["as2", "keys", "acme", "--dir", str(tmp_path / "keys")])

    config = load_config(routes(tmp_path, "keys/acme.crt"))

    settings = config.systems["acme"].settings["as2"]
    assert settings["partner_cert"] == str(tmp_path / "keys" / "acme.crt")
    assert settings["digest"] == "sha256" and settings["mdn"] == "signed"


def test_a_missing_partner_certificate_is_a_problem_naming_the_option(tmp_path):
    main(["as2", "keys", "bus", "--dir", str(tmp_path / "keys")])

    with pytest.raises(ConfigError, match="partner_cert: file not found"):
        load_config(routes(tmp_path, "keys/nobody.crt"))


def test_an_expired_partner_certificate_is_a_problem_at_check_time(tmp_path, pairs):
    main(["as2", "keys", "bus", "--dir", str(tmp_path / "keys")])

    with pytest.raises(ConfigError, match="CN=expired expired on"):
        load_config(routes(tmp_path, str(pairs["expired"][2])))
