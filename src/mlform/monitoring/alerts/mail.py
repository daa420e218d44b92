"""Alerts by email: the mail server's settings (`Smtp`) and `send_email`. (Named `mail`
so that it is never mistaken for the standard library's `email`, which it uses.)

Email goes through the SMTP server of `workspace.yml` (`alerts: {smtp: ...}`): a
subject that says what breached where, the plain-text summary, and the alert's JSON
document attached. A password is never sent unencrypted to a host other than this
machine: with a username, the connection must be TLS (`ssl`) or upgraded (`starttls`),
unless the server is on a loopback address, as a local relay is.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from mlform.errors import printable
from mlform.monitoring.alerts.delivery import (
    _EXCERPT,
    AlertError,
    Delivery,
    Reason,
    _network,
    _scrub,
)
from mlform.monitoring.alerts.document import Alert


@dataclass(frozen=True, slots=True)
class Smtp:
    """How to reach the mail server. `starttls`: True requires it, False never asks,
    None upgrades when the server offers it. `ssl` is TLS from the first byte (port 465).
    `timeout` bounds each network operation, in seconds. The password is the value of
    the environment variable that `password_env` names: it is never in a file."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool | None = None
    ssl: bool = False
    timeout: float = 30.0

    def __post_init__(self) -> None:
        where = f"alerts.smtp in workspace.yml ({self.address})"
        if self.ssl and self.starttls:
            raise AlertError(
                f"{where}: ssl and starttls are both set; use ssl: true for a server that "
                "speaks TLS from the start (usually port 465), starttls: true for one that "
                "upgrades (usually 587)",
                Reason.UNCONFIGURED,
            )
        if self.password is not None and self.username is None:
            raise AlertError(f"{where}: a password needs a username", Reason.UNCONFIGURED)
        if not 0 < self.timeout <= 300:
            raise AlertError(f"{where}: timeout must be 0 to 300 s", Reason.UNCONFIGURED)
        clear = self.starttls is False and not self.ssl
        if self.username is not None and clear and not _loopback(self.host):
            raise AlertError(
                f"{where}: starttls: false would send the password unencrypted to another "
                "host; remove it (STARTTLS is then used when offered), or set ssl: true",
                Reason.INSECURE,
            )

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def send_email(alert: Alert, recipients: Sequence[str], smtp: Smtp) -> Delivery:
    """Send `alert` to `recipients` through `smtp`; raise `AlertError` if any of them
    was refused (the message says who got it)."""
    to = _recipients(recipients)
    if not to:
        raise AlertError(f"no recipients for the alert of {alert.monitor}", Reason.UNCONFIGURED)
    message = _message(alert, to, smtp.sender)
    secrets = _smtp_secrets(smtp)
    failed = f"could not send the alert email to {', '.join(to)} through {smtp.address}"
    try:
        with _connect(smtp) as client:
            refused = client.send_message(message, to_addrs=to)
    except AlertError as err:
        raise AlertError(f"{failed}: {_scrub(str(err), secrets)}", err.reason, 1) from None
    except smtplib.SMTPRecipientsRefused as err:
        refused = err.recipients
    except (smtplib.SMTPException, OSError) as err:
        reason, text = _smtp_failure(err, smtp)
        raise AlertError(f"{failed}: {_scrub(text, secrets)}", reason, 1) from None
    if refused:
        got = [r for r in to if r not in refused]
        answers = "; ".join(f"{r}: {_reply(c, m)}" for r, (c, m) in refused.items())
        others = f"; {', '.join(got)} received it" if got else ""
        text = f"the server refused {answers}{others}. Check these addresses"
        raise AlertError(f"{failed}: {_scrub(text, secrets)}", Reason.REJECTED, 1)
    return Delivery("email", ", ".join(to), True, 1)


def _recipients(emails: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(printable(e.strip()) for e in emails if e.strip()))


def _message(alert: Alert, to: list[str], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.formatdate(usegmt=True)
    # the sender's domain: make_msgid's default asks DNS for this machine's name
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "mlform.invalid"
    message["Message-ID"] = email.utils.make_msgid("mlform", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    message.set_content(alert.summary)
    message.add_attachment(
        alert.to_json(), maintype="application", subtype="json", filename="alert.json"
    )
    return message


def _connect(smtp: Smtp) -> smtplib.SMTP:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        client.ehlo()
        encrypted = smtp.ssl
        if smtp.starttls or (smtp.starttls is None and client.has_extn("starttls")):
            client.starttls(context=context)
            client.ehlo()
            encrypted = True
        if smtp.username is not None:
            if not encrypted and not _loopback(smtp.host):
                raise AlertError(
                    "the server offers no STARTTLS, and the password would cross the "
                    "network unencrypted; set ssl: true if it speaks TLS on another port "
                    "(usually 465)",
                    Reason.INSECURE,
                )
            client.login(smtp.username, smtp.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _smtp_failure(err: Exception, smtp: Smtp) -> tuple[Reason, str]:
    where = "alerts.smtp in workspace.yml"
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return Reason.AUTH, (
            f"the server refused the login of user {smtp.username!r} "
            f"({_reply(err.smtp_code, err.smtp_error)}). Check {where}: the username, and the "
            "password in the environment variable its password_env names"
        )
    if isinstance(err, smtplib.SMTPNotSupportedError):
        if "STARTTLS" in str(err).upper():
            return Reason.TLS, (
                "the server does not offer STARTTLS. Set ssl: true if it speaks TLS from "
                f"the start (usually port 465), or remove starttls: true from {where}"
            )
        return Reason.AUTH, (
            f"the server offers no login (AUTH) on this port. Remove the username from {where}, "
            "or use the port that takes logins (usually 587)"
        )
    if isinstance(err, smtplib.SMTPConnectError | smtplib.SMTPHeloError):
        return Reason.UNAVAILABLE, (
            f"the server turned the session away ({_reply(err.smtp_code, err.smtp_error)})"
        )
    if isinstance(err, smtplib.SMTPSenderRefused):
        return Reason.REJECTED, (
            f"the server refused the sender {err.sender} ({_reply(err.smtp_code, err.smtp_error)})"
            f". Set `from` in {where} to an address this server may send from"
        )
    if isinstance(err, smtplib.SMTPResponseException):
        return Reason.REJECTED, (
            f"the server refused the message ({_reply(err.smtp_code, err.smtp_error)}). "
            "Its log says why"
        )
    if isinstance(err, smtplib.SMTPServerDisconnected):
        if isinstance(err.__context__, TimeoutError):
            err = err.__context__  # smtplib reports a read that timed out this way
        else:
            return Reason.UNAVAILABLE, (
                f"the server closed the connection ({err}). Check that {smtp.address} is a "
                "mail server, and whether it expects TLS from the start (ssl: true)"
            )
    if isinstance(err, OSError):
        return _network(err, f"Check the host and port in {where}", smtp.timeout)
    return Reason.ERROR, f"{type(err).__name__}: {err}"


def _smtp_secrets(smtp: Smtp) -> list[str]:
    """The password, and the base64 forms of it that AUTH PLAIN and LOGIN send, should
    a server quote them back."""
    if not smtp.password:
        return []
    plain = f"\0{smtp.username}\0{smtp.password}".encode()
    forms = [plain, smtp.password.encode()]
    return [smtp.password, *(base64.b64encode(f).decode("ascii") for f in forms)]


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"[:_EXCERPT]


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
