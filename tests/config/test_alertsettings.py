"""`alerts.smtp` in workspace.yml: read into settings, its password only by the name of
an environment variable, and its mistakes said where they are written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.loader import load
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def test_the_mail_server_is_read_with_its_password_by_variable_name(make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
                name: alerted
                alerts:
                  smtp:
                    host: smtp.example.com
                    port: 587
                    from: mlform@example.com
                    username: alerts
                    password_env: SMTP_PASSWORD
                    starttls: true
                """
        }
    )
    smtp = load(root).smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.sender, smtp.username) == (
        "smtp.example.com",
        587,
        "mlform@example.com",
        "alerts",
    )
    assert (smtp.password_env, smtp.starttls, smtp.ssl) == ("SMTP_PASSWORD", True, False)


def test_a_password_written_in_the_file_is_refused(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
                name: alerted
                alerts:
                  smtp: {host: smtp.example.com, from: a@example.com, password: hunter2}
                """
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines()[0] == (
        "workspace.yml:3:55: error: unknown key 'password' in alerts.smtp (did you mean "
        "'password_env'?)"
    )
    assert "hunter2" not in ran.err
