"""A real OpenSSH sshd for the tests: its own config, host key and authorized key in a temporary
folder, on a free loopback port, running as the current user (`UsePAM no`, `StrictModes no`).

With a `password`, sshd also takes that password for the current user, without touching the
system's accounts: it runs in a mount namespace of its own (`unshare --mount`) where a copy of
/etc/shadow, with the current user's line carrying the password's hash, is bind-mounted over
/etc/shadow. Only sshd and its sessions see the copy; it goes when sshd dies. That needs root
(reading /etc/shadow, unshare); `password_login_problem()` says why it cannot be done here."""

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

    def __init__(self, folder: Path, *, password: str | None = None):
        self.folder = folder
        self.password = password
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
PasswordAuthentication {"yes" if password else "no"}
KbdInteractiveAuthentication no
PermitRootLogin {"yes" if password else "prohibit-password"}
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
        command = [SSHD, "-D", "-e", "-f", str(self.config)]
        if self.password:  # unshare execs sh, which execs sshd: one process, as without
            shadow = self._shadow_copy()
            command = ["unshare", "--mount", "sh", "-c", f'mount --bind "{shadow}" /etc/shadow && exec "$@"',
                       "sh", *command]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
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

    def _shadow_copy(self) -> Path:
        """/etc/shadow with the current user's password hash replaced by that of `password`."""
        hashed = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=self.password, text=True,
                                capture_output=True, check=True).stdout.strip()
        user, lines = _user(), []
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                fields[1] = hashed
            lines.append(":".join(fields))
        copy = self.folder / "shadow"
        copy.touch(mode=0o600)
        copy.write_text("\n".join(lines) + "\n")
        return copy

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


def password_login_problem() -> str | None:
    """Why a password-login sshd cannot run here (see the module docstring), or None."""
    if os.geteuid() != 0:
        return "a password-login sshd needs root (a private copy of /etc/shadow in a mount namespace)"
    for tool in ("unshare", "openssl"):
        if shutil.which(tool) is None:
            return f"a password-login sshd needs the {tool} command"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"a password-login sshd needs a mount namespace (unshare --mount: {probe.stderr.strip()})"
    return None
