"""Telling people that a monitor's signal breached its threshold: by email and webhook.

A monitor names its recipients as Azure ML's YAML does, `alert_notification: {emails:
[...]}`, and mlform adds `webhooks: [{url, secret}]`. `notify` sends one `Alert` to all
of them and returns a `Delivery` for each channel, delivered or not: one server that is
down does not keep the others from hearing, and the caller records what happened.

No message, `repr` or `Delivery` holds a password, a webhook secret, or the user
information and query of a webhook URL: URLs are shown as `scheme://host:port/path`, and
what a server answers is quoted only after those values are replaced by `***`.

    document    Alert, Signal, Breach: what a monitor found, and its JSON document
    delivery    Delivery, Reason, AlertError, and the helpers both channels share
    mail        Smtp and send_email: email through the SMTP server of workspace.yml
    webhooks    Webhook, Retry, send_webhook, signature, verify: the signed POST
    notify      notify: one alert to every channel, whatever became of the others
"""

from mlform.monitoring.alerts.delivery import AlertError, Delivery, Reason
from mlform.monitoring.alerts.document import SCHEMA, Alert, Breach, Signal
from mlform.monitoring.alerts.mail import Smtp, send_email
from mlform.monitoring.alerts.notify import notify
from mlform.monitoring.alerts.webhooks import (
    DELIVERY_HEADER,
    RETRY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Retry,
    Webhook,
    send_webhook,
    signature,
    verify,
)

__all__ = [
    "DELIVERY_HEADER",
    "RETRY",
    "SCHEMA",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Alert",
    "AlertError",
    "Breach",
    "Delivery",
    "Reason",
    "Retry",
    "Signal",
    "Smtp",
    "Webhook",
    "notify",
    "send_email",
    "send_webhook",
    "signature",
    "verify",
]
