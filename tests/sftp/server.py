"""A real OpenSSH sshd for the tests: its own config, host key and authorized key in a temporary
folder, on a free loopback port, running as the current user (`UsePAM no`, `StrictModes no`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_key(path: Path) -> Path:
    """A throw-away ed25519 key pair: `path` (private, OpenSSH format) and `path.pub`."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "esb-test", "-f", str(path)],
                   check=True)
    return path


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class SshServer:
    """`start()`, `kill()` (the listener and every session at once, as a crash), `start()` again on
    the same port with the same host key. `known_hosts` holds its key; `user_key` may log in."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = make_key(folder / "host_ed25519")
        self.user_key = make_key(folder / "user_ed25519")
        shutil.copy(folder / "user_ed25519.pub", folder / "authorized_keys")
        self.known_hosts = folder / "known_hosts"
        public = (folder / "host_ed25519.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        self.config = folder / "sshd_config"
        self.config.write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {folder / "sshd.pid"}
AuthorizedKeysFile {folder / "authorized_keys"}
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxStartups 50
LogLevel VERBOSE
""")
        self.process: subprocess.Popen | None = None
        self.log = folder / "sshd.log"

    def settings(self, **extra) -> dict:
        """A system's `sftp` block for this server (as the config checker builds it)."""
        return {"host": "127.0.0.1", "port": self.port, "user": os.environ.get("USER") or _user(),
                "key_file": str(self.user_key), "known_hosts": str(self.known_hosts),
                "reconnect_backoff": 0.05, **extra}

    def start(self) -> SshServer:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the listener and every session process (each runs in a session of its own)."""
        if self.process is None:
            return
        pids, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            queue.extend(_children(pid))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
