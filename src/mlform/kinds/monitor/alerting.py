"""A monitor run's breaches, sent to the people and systems its file names: by email
through `alerts.smtp` of workspace.yml, and to its webhooks, signed with their secrets
(monitoring/alerts). Only signals with `alert_enabled` (the default) alert; a run with no
breach sends nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlform.errors import MlformError
from mlform.kinds.monitor.spec import MonitorSpec
from mlform.loader import Config
from mlform.state.monitors import MonitorRun

if TYPE_CHECKING:
    from mlform.monitoring.alerts import Smtp, Webhook


def send(config: Config, spec: MonitorSpec, result: MonitorRun) -> list[str]:
    """Alert about `result`'s breaches; one line per channel saying what became of it."""
    # start-up: the senders only when a monitor breaches
    from mlform.monitoring import alerts

    enabled = {s.name for s in spec.signals if s.alert}
    signals = []
    for signal in spec.signals:
        breaches = tuple(
            alerts.Breach(v.metric, v.value, v.threshold, v.feature)
            for v in result.values
            if v.signal == signal.name
            and signal.name in enabled
            and v.breached
            and v.value is not None
            and v.threshold is not None
        )
        if breaches:
            signals.append(alerts.Signal(signal.name, signal.type, breaches))
    if not signals or not (spec.emails or spec.webhooks):
        return []
    alert = alerts.Alert(
        spec.name,
        spec.endpoint,
        spec.deployment,
        tuple(signals),
        result.start,
        result.end,
        result.run.id,
    )
    try:
        smtp = _smtp(config)
        hooks = [_webhook(config, hook) for hook in spec.webhooks]
    except (MlformError, ValueError) as err:
        return [f"no alert sent: {err}"]
    return [str(d) for d in alerts.notify(alert, spec.emails, smtp, hooks)]


def _smtp(config: Config) -> Smtp | None:
    from mlform.monitoring.alerts import Smtp

    settings = config.smtp
    if settings is None:
        return None
    password = None
    if settings.password_env:
        password = os.environ.get(settings.password_env)
        if password is None:
            raise MlformError(
                f"alerts.smtp.password_env names {settings.password_env}, which is not set "
                "here; set it to the mail server's password"
            )
    return Smtp(
        settings.host,
        settings.port,
        settings.sender,
        settings.username,
        password,
        settings.starttls,
        settings.ssl,
        settings.timeout,
    )


def _webhook(config: Config, hook: Mapping[str, str]) -> Webhook:
    from mlform.monitoring.alerts import Webhook

    resolved, _ = config.vault.resolve(dict(hook))
    return Webhook(str(resolved["url"]), str(resolved.get("secret", "")))
