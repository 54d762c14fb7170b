"""The README's trading-partner routes are true: each copy-paste block of "Trading partners: SFTP"
and "Trading partners: AS2" passes `esb check` as it is written, once its key, certificate and
known_hosts files exist and its ${VAR}s are set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.as2.keys import make_pair, write_pair
from esb.config import check_config
from tests.conftest import PROJECT


def section_block(title: str) -> str:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, re.S) if "routes:" in b]
    return block


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project folder beside the routes file: the shipped mappings, and the files the blocks name."""
    (tmp_path / "mappings").symlink_to(PROJECT / "mappings")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("acme", "bus"):
        write_pair(*make_pair(name), keys, name)
    (keys / "acme_3pl_ed25519").write_text("not read by esb check\n")
    (keys / "known_hosts").write_text("")
    return tmp_path


@pytest.mark.parametrize("title", ["Trading partners: SFTP", "Trading partners: AS2"])
def test_the_copy_paste_route_of_each_trading_partner_section_passes_esb_check(folder, title):
    routes = folder / "routes.yaml"
    routes.write_text(section_block(title), encoding="utf-8")

    assert check_config(routes, {"ACME_KEY_PASSWORD": ""}) == []


def test_the_as2_block_shows_the_asynchronous_receipt_options_and_they_pass_esb_check(folder):
    block = section_block("Trading partners: AS2")
    uncommented = re.sub(r"(?m)^(\s*)# ((?:mdn_url|mdn_timeout|partner_mdn_url):)", r"\1\2", block)
    assert uncommented != block
    routes = folder / "routes.yaml"
    routes.write_text(uncommented, encoding="utf-8")

    assert check_config(routes, {}) == []
