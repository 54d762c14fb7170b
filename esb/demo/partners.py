"""The demo's trading partner, Acme 3PL (`esb/demo/partners.yaml`): its SFTP server, in-process
(`sftp_server`), where it leaves X12 940 shipping orders; and its AS2 endpoint, a simulator on
loopback that decrypts what the bus sends, checks the bus's signature with the bus's certificate
and answers a signed receipt (MDN) with the MIC, as a real AS2 server does. Certificates for both
sides are made for the run (`esb as2 keys` makes the same for a first real test).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Response, request

from adapters.as2 import mdn, profile
from adapters.as2.inbound import Refused, unwrap
from adapters.as2.keys import make_pair, write_pair
from adapters.flatfile.claims import CLAIMS_DIR
from esb.demo.sftp_server import DemoSftpServer
from esb.demo.simulator import Call, Simulator

PARTNER_ROUTES = Path(__file__).with_name("partners.yaml")
SFTP_USER = "esb"
ORDER_CASE = "mappings/partner/shipment_order.in.cases/replace_order_two_lines.input.edi"
"""The 940 the 3PL leaves on its server: the input of the mapping's own test case."""


class As2Partner(Simulator):
    """The 3PL's AS2 server at `<url>/as2`: records each message it could open (Call, message id
    from the bus's AS2 Message-ID) and answers a signed receipt, negative when it could not."""

    def __init__(self, keys: Path):
        super().__init__("acme3pl", check_auth=lambda headers: True)
        self.profile = profile.load("bus", {"as2_id": "WAREHOUSE-BUS", "our_as2_id": "ACME3PL",
                                            "partner_cert": str(keys / "bus.crt"),
                                            "our_cert": str(keys / "acme_3pl.crt"),
                                            "our_key": str(keys / "acme_3pl.key")})
        self.app.add_url_rule("/acme3pl/as2", endpoint="as2", view_func=self._as2, methods=["POST"])

    def _as2(self) -> Response:
        message_id = request.headers.get("Message-ID", "")
        bus_id = message_id.strip("<>").split("@", 1)[0] or None
        try:
            payload, _, mic = unwrap(self.profile, request.headers, request.get_data())
            error, text = None, ""
        except Refused as refused:
            payload, mic, error, text = b"", None, refused.error, str(refused)
        receipt_id = f"<mdn-{secrets.token_hex(6)}@acme3pl>"
        body, content_type = mdn.build(original_message_id=message_id, reporter="ACME3PL", mic=mic,
                                       error=error, text=text)
        body, content_type = mdn.sign(body, content_type, self.profile.our_cert, self.profile.our_key)
        self.record(Call(self.name, "/as2", 200 if error is None else 400, bus_id, payload,
                         f"MDN {receipt_id}" if error is None else None))
        return Response(body, status=200, content_type=content_type,
                        headers={"AS2-From": "ACME3PL", "AS2-To": "WAREHOUSE-BUS", "Message-ID": receipt_id})


class Partner:
    """Acme 3PL for one demo run, in `folder`: `start()`, `environ()`, `leave_order()`, `stop()`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.keys = folder / "keys"
        for name in ("bus", "acme_3pl"):
            write_pair(*make_pair(name), self.keys, name)
        self.outbound = folder / "sftp" / "outbound"
        self._password = secrets.token_urlsafe(16)
        self.sftp = DemoSftpServer(folder / "sftp", self.keys / "known_hosts", user=SFTP_USER,
                                   password=self._password)
        self.as2 = As2Partner(self.keys)

    def start(self) -> Partner:
        self.sftp.start()
        self.outbound.mkdir(parents=True, exist_ok=True)
        self.as2.start()
        return self

    def environ(self) -> dict[str, str]:
        """The variables that point esb/demo/partners.yaml at this partner."""
        return {"TPL_SFTP_HOST": "127.0.0.1", "TPL_SFTP_PORT": str(self.sftp.port),
                "TPL_SFTP_USER": SFTP_USER, "TPL_SFTP_PASSWORD": self._password,
                "TPL_KNOWN_HOSTS": str(self.sftp.known_hosts),
                "TPL_AS2_URL": f"{self.as2.url}/as2", "TPL_AS2_CERT": str(self.keys / "acme_3pl.crt"),
                "BUS_AS2_CERT": str(self.keys / "bus.crt"), "BUS_AS2_KEY": str(self.keys / "bus.key")}

    def leave_order(self, name: str, body: bytes) -> str:
        """The 3PL writes a file aside on its server, then renames it into outbound/."""
        hidden = self.outbound / f".{name}.part"
        hidden.write_bytes(body)
        hidden.rename(self.outbound / name)
        return f"the 3PL left {name} in outbound/ on its SFTP server (127.0.0.1:{self.sftp.port})"

    def waiting(self) -> bool:
        """A file still waits in outbound/ for the bus, or is claimed and not yet in processed/."""
        return files_waiting(self.outbound, "*.edi")

    def stop(self) -> None:
        self.sftp.stop()
        self.as2.stop()


def files_waiting(directory: Path, pattern: str) -> bool:
    """A file matching `pattern` is still in `directory`, or claimed by the bus and not yet moved
    on to processed/ or error/ (the file source moves it once every record is stored)."""
    return any(directory.glob(pattern)) or any((directory / CLAIMS_DIR).glob(f"*/{pattern}"))
