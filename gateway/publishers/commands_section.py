"""The `commands` config section (its own module so gateway.config can import it early).

It imports nothing from the gateway, so `gateway/config.py` can import it at the top without a
cycle; like `gateway.config.Section`, unknown keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

IDENTITY_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
HA_IDENTITY = "homeassistant"  # the identity topic level Home Assistant's controls publish on


class CommandsSection(BaseModel):
    """MQTT command topics `<prefix>/<id>/command/...` (needs `mqtt.enabled`; docs/mqtt.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Accept commands on `<prefix>/<id>/command/<name>` (go_safe, ack).",
    )
    allow_go_safe_release: bool = Field(
        False,
        description=(
            "Accept `command/go_safe` `off` (withdraws only the MQTT go-safe request; other "
            "go-safe sources stay in force). Less safe: needs `commands.token` or a trusted "
            "identity (see docs/mqtt.md). False: once requested over MQTT, go-safe stays until "
            "it is released locally."
        ),
    )
    allow_ack: bool = Field(
        False,
        description=(
            "Accept `command/ack` (acknowledge latched errors over MQTT). Off by default: a "
            "latch exists so that a person looks at the battery before a contactor re-closes. "
            "Less safe: needs `commands.token` or a trusted identity (see docs/mqtt.md)."
        ),
    )
    token: SecretStr | None = Field(
        None,
        description=(
            "Secret that authorises less-safe commands (payload field or MQTT v5 user property "
            "`token`); or set BMSGW_COMMANDS__TOKEN. Never logged."
        ),
    )
    token_file: Path | None = Field(None, description="File whose first line is `commands.token`.")
    trusted_identities: list[str] = Field(
        default_factory=list,
        description=(
            "Identities whose topic `<prefix>/<id>/command/<name>/<identity>` authorises "
            "less-safe commands. Only as trustworthy as the broker ACL that lets only that "
            "user publish there (deploy/mosquitto/acl)."
        ),
    )
    persist_go_safe: bool = Field(
        True,
        description=(
            "Keep an MQTT go-safe request across gateway restarts "
            "(`<gateway.state_dir>/go_safe_requests.json`) until it is released."
        ),
    )

    @model_validator(mode="after")
    def _check_authority(self) -> CommandsSection:
        if self.token is None and self.token_file is not None:
            try:
                text = self.token_file.read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(
                    f"token_file: cannot read {self.token_file}: {err.strerror}"
                ) from err
            self.token = SecretStr(text.splitlines()[0].strip() if text else "")
        if self.token is not None and len(self.token.get_secret_value()) < 8:
            raise ValueError("commands.token: use at least 8 characters (a secret, not a flag)")
        for ident in self.trusted_identities:
            if not re.match(IDENTITY_PATTERN, ident):
                raise ValueError(
                    "commands.trusted_identities: an identity is one topic level of letters, "
                    "digits, '_', '-', '.', '@' (no '/', '+', '#')"
                )
        if (self.allow_ack or self.allow_go_safe_release) and not (
            self.token is not None or self.trusted_identities
        ):
            enabled = "commands.allow_ack" if self.allow_ack else "commands.allow_go_safe_release"
            raise ValueError(
                f"{enabled}: less-safe commands need the gateway's own authorisation; set "
                "commands.token (or token_file) or commands.trusted_identities"
            )
        return self

    def secret(self) -> str | None:
        """The token in clear (for the comparison only)."""
        return None if self.token is None else self.token.get_secret_value()
