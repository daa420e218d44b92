"""`alerts:` in workspace.yml: the mail server that monitors' alert emails go through.

    alerts:
      smtp:
        host: smtp.example.com
        port: 587
        from: mlform@example.com
        username: alerts                # optional
        password_env: SMTP_PASSWORD     # the variable that holds the password, never a value
        starttls: true                  # optional: true requires it, false never asks;
        ssl: false                      #   absent, upgrades when the server offers it

The password is read from the environment when an alert is sent, so a workspace without
it still plans, and a missing variable is said when a monitor has an email to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password_env: str | None = None
    starttls: bool | None = None
    ssl: bool = False
    timeout: float = 30.0


def parse(body: Mapping[str, object]) -> SmtpSettings | None:
    """The mail server `alerts.smtp` names, once the schema has checked it; None if none."""
    alerts = body.get("alerts")
    smtp = alerts.get("smtp") if isinstance(alerts, Mapping) else None
    if not isinstance(smtp, Mapping):
        return None
    starttls = smtp.get("starttls")
    return SmtpSettings(
        host=str(smtp["host"]),
        port=int(str(smtp.get("port", 25))),
        sender=str(smtp["from"]),
        username=str(smtp["username"]) if smtp.get("username") is not None else None,
        password_env=str(smtp["password_env"]) if smtp.get("password_env") else None,
        starttls=bool(starttls) if starttls is not None else None,
        ssl=bool(smtp.get("ssl", False)),
        timeout=float(str(smtp.get("timeout", 30.0))),
    )
