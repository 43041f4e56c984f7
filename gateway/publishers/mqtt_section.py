"""Building blocks of the `mqtt` config section that are the publisher's own: TLS, brokers.

Imports nothing from the gateway, so `gateway/config.py` can import it at the top.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MqttTlsSection(BaseModel):
    """`mqtt.tls`: TLS to the broker (absent or null: plain TCP)."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(
        None,
        description="CA certificate(s) (PEM) that signed the broker's certificate; null: the "
        "system's trusted CAs.",
    )
    cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for brokers that require one."
    )
    key_file: Path | None = Field(None, description="Private key (PEM) of `cert_file`.")
    insecure: bool = Field(
        False,
        description="Skip verifying the broker's certificate and name. Testing only: anyone "
        "on the path can pose as the broker and read the credentials and commands.",
    )

    @model_validator(mode="after")
    def _check_files(self) -> MqttTlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate)")
        for name in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self


def parse_endpoint(text: str) -> tuple[str, int]:
    """Parse `host:port` (`[v6addr]:port` for IPv6 literals).

    Raises:
        ValueError: not of that form, or the port is not 1..65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address as [addr]:port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port must be 1..65535")
    return host, port
