"""A real Synapse homeserver on loopback, for tests and the demo."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .ports import ServerProcess, free_port, start_and_wait

__all__ = ["Synapse"]

# Every rate limiter we might trip while a test hammers the server.
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_admin_redaction",
    "rc_joins_per_room",
    "rc_room_creation",
    "rc_media_create",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_presence.per_user",
    # Not required by the brief, but they exist in synapse 1.16x and would
    # otherwise throttle profile/typing-heavy tests.
    "rc_profile",
    "rc_key_requests",
    "rc_third_party_invite",
    "rc_user_directory",
    "rc_delayed_event_mgmt",
    "rc_reports",
)
_NO_LIMIT = {"per_second": 10000, "burst_count": 100000}


def _rate_limit_config() -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for key in _RATE_LIMITS:
        top, _, sub = key.partition(".")
        if sub:
            cfg.setdefault(top, {})[sub] = dict(_NO_LIMIT)
        else:
            cfg[top] = dict(_NO_LIMIT)
    return cfg


class Synapse(ServerProcess):
    """Run ``synapse.app.homeserver`` as a subprocess in ``workdir``.

    The port and secrets are chosen once, so :meth:`restart` brings the
    server back with the same URL and database. To bring back a homeserver
    saved earlier, put its ``homeserver.db`` and ``signing.key`` in
    ``workdir`` and pass the secrets it was made with (``port`` too, if it
    must keep its URL).
    """

    stop_timeout = 15.0

    server_name = "localhost"
    startup_timeout = 60.0

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        registration_shared_secret: str | None = None,
        macaroon_secret_key: str | None = None,
        form_secret: str | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        # Settings on top of the test defaults (e.g. no password login).
        self._extra_config = dict(extra_config or {})
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.registration_shared_secret = (
            registration_shared_secret or secrets.token_hex(16)
        )
        self._macaroon_secret = macaroon_secret_key or secrets.token_hex(16)
        self._form_secret = form_secret or secrets.token_hex(16)
        self.config_path = self.workdir / "homeserver.yaml"
        self.log_path = self.workdir / "synapse.log"
        self.stdout_path = self.workdir / "synapse.stdout.log"
        super().__init__()
        self.start_duration: float | None = None
        atexit.register(self.stop)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle --------------------------------------------------------

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("Synapse already running")
        t0 = time.monotonic()
        self._write_config()
        if not (self.workdir / "signing.key").exists():
            self._generate_keys()
        self.proc = start_and_wait(
            "Synapse",
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config_path),
            ],
            self.workdir,
            self.stdout_path,
            self._versions_ok,
            [self.stdout_path, self.log_path],
            self.startup_timeout,
        )
        self.start_duration = time.monotonic() - t0

    # --- admin helpers ----------------------------------------------------

    def register_user(
        self, username: str, password: str, admin: bool = False
    ) -> dict[str, Any]:
        """Create a user via the shared-secret admin API.

        Returns the JSON answer (``access_token``, ``user_id``, ``device_id``).
        """
        url = f"{self.base_url}/_synapse/admin/v1/register"
        nonce = self._request("GET", url)["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        return self._request(
            "POST",
            url,
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )

    # --- internals --------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        wd = self.workdir
        cfg: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(wd / "homeserver.pid"),
            "signing_key_path": str(wd / "signing.key"),
            "log_config": str(wd / "log_config.yaml"),
            "media_store_path": str(wd / "media_store"),
            "database": {
                "name": "sqlite3",
                "args": {"database": str(wd / "homeserver.db")},
            },
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": self._macaroon_secret,
            "form_secret": self._form_secret,
            "enable_registration": False,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "bcrypt_rounds": 4,
            # Lets a logged-in client mint an m.login.token for a new session.
            "login_via_existing_session": {
                "enabled": True,
                "require_ui_auth": False,
                "token_timeout": "5m",
            },
        }
        cfg.update(_rate_limit_config())
        cfg.update(self._extra_config)
        return cfg

    def _write_config(self) -> None:
        log_config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - "
                    "%(levelname)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "level": "WARNING",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
        }
        # JSON is valid YAML, and saves us a PyYAML dependency in the harness.
        (self.workdir / "log_config.yaml").write_text(json.dumps(log_config, indent=2))
        self.config_path.write_text(json.dumps(self._config(), indent=2))

    def _generate_keys(self) -> None:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config_path),
                "--generate-keys",
            ],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"synapse --generate-keys failed ({res.returncode}):\n"
                + res.stdout.decode(errors="replace")
                + res.stderr.decode(errors="replace")
            )

    def _versions_ok(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.base_url}/_matrix/client/versions", timeout=2
            ) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    @staticmethod
    def _request(method: str, url: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                result: dict[str, Any] = json.load(resp)
                return result
        except urllib.error.HTTPError as e:
            raise RuntimeError(
                f"{method} {url} -> {e.code}: {e.read().decode(errors='replace')}"
            ) from None
