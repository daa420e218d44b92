"""Alerts sent to real servers: aiosmtpd for mail, http.server for webhooks."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlform.monitoring.alerts import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alert,
    AlertError,
    Breach,
    Reason,
    Retry,
    Signal,
    Smtp,
    Webhook,
    notify,
    send_email,
    send_webhook,
    signature,
    verify,
)
from tests.ports import free_port

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP as Server  # noqa: E402
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session  # noqa: E402

SECRET = "whsec-3f2a9c1d7e"
PASSWORD = "right-pa55word"
FAST = Retry(attempts=3, delay=0.001, max_delay=0.01)
# aiosmtpd warns of a login without TLS, which is what a server on 127.0.0.1 may allow
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

ALERT = Alert(
    monitor="iris-drift",
    endpoint="iris",
    deployment=None,
    signals=(
        Signal(
            name="drift",
            type="data_drift",
            breaches=(
                Breach("jensen_shannon_distance", 0.31, 0.1, feature="species"),
                Breach("normalized_wasserstein_distance", 0.254, 0.2, feature="petal_length"),
            ),
        ),
    ),
    start=datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    end=datetime(2024, 5, 2, tzinfo=UTC),
    run_id="run-7c1e",
)


# --- the alert ------------------------------------------------------------------------


def test_the_json_document_has_its_documented_keys_in_order() -> None:
    document = json.loads(ALERT.to_json())
    assert list(document) == [
        "schema",
        "monitor",
        "endpoint",
        "deployment",
        "run_id",
        "window",
        "signals",
        "summary",
    ]
    assert document["schema"] == "mlform.alert/1"
    assert document["window"] == {"start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z"}
    assert document["signals"] == [
        {
            "name": "drift",
            "type": "data_drift",
            "breaches": [
                {
                    "feature": "species",
                    "metric": "jensen_shannon_distance",
                    "value": 0.31,
                    "threshold": 0.1,
                },
                {
                    "feature": "petal_length",
                    "metric": "normalized_wasserstein_distance",
                    "value": 0.254,
                    "threshold": 0.2,
                },
            ],
        }
    ]
    assert document["deployment"] is None
    assert ALERT.to_json() == ALERT.to_json()  # what a webhook signs is reproducible


def test_subject_and_summary_say_what_breached_where() -> None:
    assert ALERT.subject == "[mlform] data drift on endpoint/iris: 2 features breached"
    assert ALERT.summary == (
        "Monitor iris-drift found breaches on endpoint/iris\n"
        "in the window 2024-05-01T00:00:00Z to 2024-05-02T00:00:00Z (run run-7c1e).\n"
        "\n"
        "data drift (signal drift):\n"
        "  species: jensen_shannon_distance = 0.31 (threshold 0.1)\n"
        "  petal_length: normalized_wasserstein_distance = 0.254 (threshold 0.2)\n"
    )
    model = Signal("accuracy", "model_performance", (Breach("accuracy", 0.7, 0.9),))
    both = Alert("m", "iris", "blue", (*ALERT.signals, model), ALERT.start, ALERT.end, "r")
    assert both.subject == (
        "[mlform] data drift and model performance on deployment/iris/blue: "
        "2 features and 1 metric breached"
    )


def test_an_alert_needs_an_aware_window() -> None:
    with pytest.raises(ValueError, match="zone"):
        Alert("m", "iris", None, ALERT.signals, datetime(2024, 5, 1), ALERT.end, "r")


# --- email ------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives, and refuses `refuse`."""

    refuse: set[str] = field(default_factory=set)
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Server, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: Server, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data == (b"alerts", PASSWORD.encode()), handled=False)

    def message(self) -> EmailMessage:
        (envelope,) = self.envelopes
        assert envelope.original_content is not None
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    yield from _smtp_server(Inbox())


@pytest.fixture
def login_inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    yield from _smtp_server(
        box, authenticator=box.authenticate, auth_require_tls=False, auth_required=True
    )


def _smtp_server(box: Inbox, **options: Any) -> Iterator[tuple[Inbox, int]]:
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, server_hostname="mail.test", **options
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_an_email_carries_the_subject_the_summary_and_the_json(inbox: tuple[Inbox, int]) -> None:
    box, port = inbox
    smtp = Smtp("127.0.0.1", port, "mlform <alerts@example.com>", timeout=5)
    delivery = send_email(ALERT, ["a@example.com", "b@example.com"], smtp)
    assert delivery.delivered
    assert delivery.target == "a@example.com, b@example.com"
    (envelope,) = box.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["a@example.com", "b@example.com"]
    message = box.message()
    assert message["Subject"] == "[mlform] data drift on endpoint/iris: 2 features breached"
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines() == ALERT.summary.splitlines()
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == "alert.json"
    assert attachment.get_content() == ALERT.to_json()


@AUTH_WITHOUT_TLS
def test_a_server_that_asks_for_a_login_gets_it(login_inbox: tuple[Inbox, int]) -> None:
    box, port = login_inbox
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", "alerts", PASSWORD, timeout=5)
    assert send_email(ALERT, ["a@example.com"], smtp).delivered
    assert box.logins == [(b"alerts", PASSWORD.encode())]
    assert len(box.envelopes) == 1


@AUTH_WITHOUT_TLS
def test_a_wrong_password_fails_clearly_without_showing_it(
    login_inbox: tuple[Inbox, int],
) -> None:
    box, port = login_inbox
    wrong = "wrong-pa55word"
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", "alerts", wrong, timeout=5)
    with pytest.raises(AlertError) as caught:
        send_email(ALERT, ["a@example.com", "b@example.com"], smtp)
    message = str(caught.value)
    assert caught.value.reason is Reason.AUTH
    assert message.startswith(
        f"could not send the alert email to a@example.com, b@example.com through "
        f"127.0.0.1:{port}: the server refused the login of user 'alerts' (535 "
    )
    assert "password_env" in message
    assert wrong not in message and wrong not in repr(smtp)
    assert box.envelopes == []


def test_a_refused_connection_names_the_server(inbox: tuple[Inbox, int]) -> None:
    port = free_port()  # nothing listens there
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", timeout=5)
    with pytest.raises(AlertError) as caught:
        send_email(ALERT, ["a@example.com"], smtp)
    assert caught.value.reason is Reason.REFUSED
    assert str(caught.value) == (
        f"could not send the alert email to a@example.com through 127.0.0.1:{port}: the "
        "connection was refused. Check the host and port in alerts.smtp in workspace.yml"
    )


def test_a_server_that_never_greets_times_out(silent_port: int) -> None:
    smtp = Smtp("127.0.0.1", silent_port, "alerts@example.com", timeout=0.2)
    with pytest.raises(AlertError, match=r"no answer within 0\.2 s") as caught:
        send_email(ALERT, ["a@example.com"], smtp)
    assert caught.value.reason is Reason.TIMEOUT


def test_starttls_required_but_not_offered_is_a_tls_failure(inbox: tuple[Inbox, int]) -> None:
    _, port = inbox
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", starttls=True, timeout=5)
    with pytest.raises(AlertError, match="does not offer STARTTLS") as caught:
        send_email(ALERT, ["a@example.com"], smtp)
    assert caught.value.reason is Reason.TLS


def test_a_refused_recipient_is_reported_with_who_got_the_mail(inbox: tuple[Inbox, int]) -> None:
    box, port = inbox
    box.refuse.add("gone@example.com")
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", timeout=5)
    with pytest.raises(AlertError) as caught:
        send_email(ALERT, ["gone@example.com", "a@example.com"], smtp)
    assert caught.value.reason is Reason.REJECTED
    assert str(caught.value).endswith(
        "the server refused gone@example.com: 550 5.1.1 no such mailbox here; "
        "a@example.com received it. Check these addresses"
    )
    assert box.envelopes[0].rcpt_tos == ["a@example.com"]


def test_a_password_is_never_sent_unencrypted_to_another_host() -> None:
    with pytest.raises(AlertError, match="unencrypted") as caught:
        Smtp("mail.example.com", 587, "a@example.com", "alerts", PASSWORD, starttls=False)
    assert caught.value.reason is Reason.INSECURE
    assert PASSWORD not in str(caught.value)


# --- webhooks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool


class Receiver:
    """A webhook receiver on a thread: it verifies each delivery's signature, keeps it,
    and gives the next of its scripted answers (the last one again once they run out)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers) or [Answer(200, body=b"thanks")]
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verify(body, self.headers[SIGNATURE_HEADER], SECRET)
                headers = dict(self.headers.items())
                receiver.received.append(Received(self.path, headers, body, signed))
                answer = receiver.answers[min(len(receiver.received), len(receiver.answers)) - 1]
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        # a short poll: `shutdown` waits for the loop to look at its flag
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receivers() -> Iterator[type[Receiver]]:
    started: list[Receiver] = []

    class Started(Receiver):
        def __init__(self, *answers: Answer) -> None:
            super().__init__(*answers)
            started.append(self)

    yield Started
    for receiver in started:
        receiver.close()


def test_a_webhook_gets_the_json_signed(receivers: type[Receiver]) -> None:
    receiver = receivers()
    before = int(time.time())
    delivery = send_webhook(ALERT, Webhook(receiver.url, SECRET), FAST)
    assert (delivery.delivered, delivery.attempts, delivery.target) == (True, 1, receiver.url)
    (got,) = receiver.received
    assert got.signed
    assert got.body == ALERT.to_json()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers[SIGNATURE_HEADER] == signature(ALERT.to_json(), SECRET)
    assert got.headers[DELIVERY_HEADER] == delivery.id == str(uuid.UUID(delivery.id or ""))
    assert before <= int(got.headers[TIMESTAMP_HEADER]) <= time.time()


def test_verify_refuses_another_body_secret_or_header() -> None:
    body = ALERT.to_json()
    header = signature(body, SECRET)
    assert verify(body, header, SECRET)
    assert not verify(body + b" ", header, SECRET)
    assert not verify(body, header, "another-secret")
    assert not verify(body, None, SECRET)
    assert not verify(body, header.removeprefix("sha256="), SECRET)


def test_a_failing_receiver_is_retried_with_the_same_delivery_id(
    receivers: type[Receiver],
) -> None:
    receiver = receivers(Answer(500), Answer(500), Answer(200))
    delivery = send_webhook(ALERT, Webhook(receiver.url, SECRET), FAST)
    assert (delivery.delivered, delivery.attempts) == (True, 3)
    assert [r.headers[DELIVERY_HEADER] for r in receiver.received] == [delivery.id] * 3
    assert all(r.signed for r in receiver.received)


def test_too_many_requests_is_retried_after_the_time_asked(receivers: type[Receiver]) -> None:
    receiver = receivers(Answer(429, {"Retry-After": "0"}), Answer(202))
    slow = Retry(attempts=2, delay=60, max_delay=60)  # the backoff alone would take a minute
    assert send_webhook(ALERT, Webhook(receiver.url, SECRET), slow).attempts == 2


def test_a_refusal_is_not_retried(receivers: type[Receiver]) -> None:
    receiver = receivers(Answer(400, body=b'{"error": "unknown monitor"}'))
    with pytest.raises(AlertError) as caught:
        send_webhook(ALERT, Webhook(receiver.url, SECRET), FAST)
    assert (caught.value.reason, caught.value.attempts) == (Reason.REJECTED, 1)
    assert str(caught.value) == (
        f"could not deliver the alert to the webhook {receiver.url}: it answered 400 Bad "
        """Request ('{"error": "unknown monitor"}') (1 attempt). The receiver refused the """
        "alert: its log says why"
    )
    assert len(receiver.received) == 1


def test_a_receiver_that_stays_down_is_reported_after_the_last_attempt(
    receivers: type[Receiver],
) -> None:
    receiver = receivers(Answer(503))
    with pytest.raises(AlertError, match=r"it answered 503 Service Unavailable \(3 attempts\)"):
        send_webhook(ALERT, Webhook(receiver.url, SECRET), FAST)
    assert len(receiver.received) == 3


def test_nothing_listening_is_reported_quickly_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    started = time.monotonic()
    with pytest.raises(AlertError) as caught:
        send_webhook(ALERT, Webhook(url, SECRET), FAST)
    assert time.monotonic() - started < 2
    assert (caught.value.reason, caught.value.attempts) == (Reason.REFUSED, 3)
    assert str(caught.value) == (
        f"could not deliver the alert to the webhook {url}: the connection was refused "
        "(3 attempts). Check the URL, and that the receiver runs and this machine can reach it"
    )


def test_a_receiver_that_never_answers_times_out(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/hook"
    with pytest.raises(AlertError, match=r"no answer within 0\.2 s \(2 attempts\)") as caught:
        send_webhook(ALERT, Webhook(url, SECRET), Retry(attempts=2, delay=0.001), timeout=0.2)
    assert caught.value.reason is Reason.TIMEOUT


def test_credentials_in_the_url_are_used_and_never_shown(receivers: type[Receiver]) -> None:
    receiver = receivers(Answer(401, body=b"who is alice:pa55-w0rd? token=tok-9f8e7d"))
    url = f"http://alice:pa55-w0rd@127.0.0.1:{receiver.port}/hook?token=tok-9f8e7d"
    hook = Webhook(url, SECRET)
    with pytest.raises(AlertError) as caught:
        send_webhook(ALERT, hook, FAST)
    (got,) = receiver.received
    assert got.path == "/hook?token=tok-9f8e7d"
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pa55-w0rd").decode()
    message = str(caught.value)
    assert message.startswith(
        f"could not deliver the alert to the webhook http://127.0.0.1:{receiver.port}/hook: "
        "it answered 401 Unauthorized"
    )
    for secret in ("pa55-w0rd", "tok-9f8e7d", SECRET):
        assert secret not in message
        assert secret not in repr(hook)

    with pytest.raises(AlertError, match="not an http:// or https:// URL") as caught:
        Webhook("ftp://alice:pa55-w0rd@files.example.com/in?token=tok-9f8e7d", SECRET)
    assert str(caught.value) == (
        "the webhook URL ftp://files.example.com/in is not an http:// or https:// URL with a host"
    )

    refused = f"http://alice:pa55-w0rd@127.0.0.1:{free_port()}/hook?token=tok-9f8e7d"
    (delivery,) = notify(ALERT, [], None, [Webhook(refused, SECRET)], retry=FAST)
    assert delivery.reason is Reason.REFUSED
    assert "pa55-w0rd" not in str(delivery) and "tok-9f8e7d" not in str(delivery)


def test_a_redirect_is_followed_only_on_the_same_origin(receivers: type[Receiver]) -> None:
    moved = receivers(Answer(307, {"Location": "/moved"}), Answer(200))
    assert send_webhook(ALERT, Webhook(moved.url, SECRET), FAST).delivered
    assert [(r.path, r.signed) for r in moved.received] == [("/hook", True), ("/moved", True)]

    elsewhere = receivers()
    away = receivers(Answer(307, {"Location": elsewhere.url + "?token=tok-9f8e7d"}))
    with pytest.raises(AlertError, match=f"307 Temporary Redirect to {elsewhere.url} ") as caught:
        send_webhook(ALERT, Webhook(away.url, SECRET), FAST)
    assert caught.value.reason is Reason.REJECTED
    assert "tok-9f8e7d" not in str(caught.value)
    assert elsewhere.received == []


# --- notify -----------------------------------------------------------------------------


def test_notify_reaches_every_channel_whatever_fails(
    inbox: tuple[Inbox, int], receivers: type[Receiver]
) -> None:
    box, port = inbox
    good, bad = receivers(), receivers(Answer(404))
    smtp = Smtp("127.0.0.1", port, "alerts@example.com", timeout=5)
    hooks = [Webhook(bad.url, SECRET), Webhook(good.url, SECRET)]
    deliveries = notify(ALERT, ["a@example.com"], smtp, hooks, retry=FAST)
    assert [(d.channel, d.target, d.delivered, d.reason) for d in deliveries] == [
        ("email", "a@example.com", True, None),
        ("webhook", bad.url, False, Reason.REJECTED),
        ("webhook", good.url, True, None),
    ]
    assert "Check the webhook's URL: the receiver has no such path" in deliveries[1].detail
    assert len(box.envelopes) == len(good.received) == len(bad.received) == 1


def test_notify_reports_emails_without_a_mail_server() -> None:
    (delivery,) = notify(ALERT, ["a@example.com"], None, [])
    assert (delivery.delivered, delivery.reason) == (False, Reason.UNCONFIGURED)
    assert "add alerts.smtp" in delivery.detail
