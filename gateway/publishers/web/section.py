"""The `web` config section (its own module so gateway.config can import it early).

It imports nothing from the gateway; like `gateway.config.Section`, unknown keys are errors.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_local_host(host: str) -> bool:
    """True when `host` only accepts connections from this machine (loopback)."""
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebSection(BaseModel):
    """The built-in web dashboard and its JSON API."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Serve the dashboard and the JSON API.")
    host: str = Field(
        "127.0.0.1",
        description="Listen address. Any address other than loopback needs `web.token` or "
        "`web.username` + `web.password`.",
    )
    port: int = Field(8108, ge=0, lt=65536, description="TCP port (0 picks a free port).")
    token: SecretStr | None = Field(
        None,
        description="Access token: `Authorization: Bearer <token>`, or open "
        "`/?token=<token>` once in a browser (sets a cookie). Or set BMSGW_WEB__TOKEN.",
    )
    username: str | None = Field(None, description="HTTP basic auth user name.")
    password: SecretStr | None = Field(
        None, description="HTTP basic auth password (or set BMSGW_WEB__PASSWORD)."
    )

    @model_validator(mode="after")
    def _auth_for_remote_binds(self) -> WebSection:
        if (self.username is None) != (self.password is None):
            raise ValueError("web.username and web.password go together")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("web.token: must not be empty")
        if not is_local_host(self.host) and self.token is None and self.username is None:
            raise ValueError(
                f"web.host {self.host!r} accepts connections from other machines: set "
                "web.token or web.username + web.password (or bind to 127.0.0.1)"
            )
        return self

    @property
    def auth_required(self) -> bool:
        """True when a token or a user name is configured."""
        return self.token is not None or self.username is not None
