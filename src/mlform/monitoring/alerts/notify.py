"""`notify`: one alert to every recipient a monitor names, by email and by webhook,
each channel tried whatever became of the others. It is a module of its own because it
calls both channels, which import `delivery`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from mlform.monitoring.alerts.delivery import AlertError, Delivery, Reason, _scrub
from mlform.monitoring.alerts.document import Alert
from mlform.monitoring.alerts.mail import Smtp, _recipients, _smtp_secrets, send_email
from mlform.monitoring.alerts.webhooks import RETRY, Retry, Webhook, _parse, send_webhook


def notify(
    alert: Alert,
    emails: Sequence[str],
    smtp: Smtp | None,
    webhooks: Sequence[Webhook],
    *,
    retry: Retry = RETRY,
    timeout: float = 10.0,
) -> list[Delivery]:
    """Send `alert` by email to `emails` and to each webhook, one after the other;
    every channel is tried whatever became of the ones before."""
    deliveries: list[Delivery] = []
    if emails:
        target = ", ".join(_recipients(emails))
        if smtp is None:
            detail = (
                f"the monitor {alert.monitor} names emails but workspace.yml has no mail "
                "server: add alerts.smtp (host, port, from)"
            )
            deliveries.append(Delivery("email", target, False, 0, Reason.UNCONFIGURED, detail))
        else:
            send = functools.partial(send_email, alert, emails, smtp)
            deliveries.append(_deliver("email", target, _smtp_secrets(smtp), send))
    for hook in webhooks:
        post = functools.partial(send_webhook, alert, hook, retry, timeout)
        secrets = [hook.secret, *_parse(hook.url).secrets]
        deliveries.append(_deliver("webhook", hook.shown, secrets, post))
    return deliveries


def _deliver(
    channel: Literal["email", "webhook"],
    target: str,
    secrets: Iterable[str],
    send: Callable[[], Delivery],
) -> Delivery:
    try:
        return send()
    except AlertError as err:
        detail = _scrub(str(err), secrets)
        return Delivery(channel, target, False, err.attempts, err.reason, detail, err.delivery_id)
    except Exception as err:  # a failure of one channel must not silence the others
        detail = _scrub(f"{type(err).__name__}: {err}", secrets)
        return Delivery(channel, target, False, 1, Reason.ERROR, detail)
