import email
from email.message import EmailMessage
from email.policy import default

import pytest

from ingest.autoreply import bounced_message_ids, detect_automatic


def _mail(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ali <ali@example.com>"
    msg["To"] = "claims@parvandeh.example"
    msg["Subject"] = "claim"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("body")
    return email.message_from_bytes(bytes(msg), policy=default)


def _dsn(original: bytes, part_type: str = "message/rfc822", report: str = "delivery-status") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.com\r\n"
        b"To: claims@parvandeh.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <bounce-1@mx.example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=" + report.encode() + b"; boundary=\"BB\"\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--BB\r\nContent-Type: " + part_type.encode() + b"\r\n\r\n" + original + b"\r\n"
        b"--BB--\r\n"
    )


ORIGINAL = (
    b"From: claims@parvandeh.example\r\nTo: nobody@example.com\r\n"
    b"Message-ID: <reply-42@parvandeh.example>\r\nSubject: [PV-1405-000123]\r\n\r\nhello\r\n"
)


def test_person_mail_is_not_automatic():
    assert detect_automatic(_mail(), "ali@example.com") == ""
    assert detect_automatic(_mail(Auto_Submitted="no"), "ali@example.com") == ""


def test_out_of_office_with_auto_submitted():
    assert detect_automatic(_mail(Auto_Submitted="auto-replied (vacation)"), "ali@example.com") == (
        "auto-submitted:auto-replied"
    )


@pytest.mark.parametrize("value", ["bulk", "junk", "list", "Bulk"])
def test_precedence_bulk_junk_list(value):
    assert detect_automatic(_mail(Precedence=value), "ali@example.com") == f"precedence:{value.lower()}"


def test_loop_and_autoreply_headers():
    assert detect_automatic(_mail(X_Loop="claims@parvandeh.example"), "ali@example.com") == "x-loop"
    assert detect_automatic(_mail(X_Autoreply="yes"), "ali@example.com") == "x-autoreply"
    assert detect_automatic(_mail(X_Autorespond="1"), "ali@example.com") == "x-autorespond"
    assert detect_automatic(_mail(X_Auto_Response_Suppress="DR, OOF"), "ali@example.com") == (
        "x-auto-response-suppress"
    )
    assert detect_automatic(_mail(X_Auto_Response_Suppress="RN"), "ali@example.com") == ""


def test_mailing_list_id_is_list_but_unsubscribe_alone_is_not():
    assert detect_automatic(_mail(List_Id="<claims.lists.example>"), "ali@example.com") == "list"
    notice = _mail(List_Unsubscribe="<mailto:unsub@insurer.example>")
    assert detect_automatic(notice, "ali@example.com") == ""


def test_bounce_sender_and_null_return_path():
    assert detect_automatic(_mail(), "mailer-daemon@mx.example.com") == "bounce-sender"
    assert detect_automatic(_mail(), "postmaster@example.com") == "bounce-sender"
    assert detect_automatic(_mail(Return_Path="<>"), "ali@example.com") == "null-return-path"


def test_dsn_is_a_bounce_and_names_the_original_message():
    msg = email.message_from_bytes(_dsn(ORIGINAL), policy=default)
    assert detect_automatic(msg, "mailer-daemon@mx.example.com") == "bounce"
    assert bounced_message_ids(msg) == ("reply-42@parvandeh.example",)


def test_dsn_with_headers_only_part():
    for part_type in ("text/rfc822-headers", "message/rfc822-headers"):
        msg = email.message_from_bytes(_dsn(ORIGINAL, part_type), policy=default)
        assert bounced_message_ids(msg) == ("reply-42@parvandeh.example",)


def test_read_receipt():
    msg = email.message_from_bytes(
        _dsn(ORIGINAL, "text/rfc822-headers", "disposition-notification"), policy=default
    )
    assert detect_automatic(msg, "ali@example.com") == "read-receipt"
    assert bounced_message_ids(msg) == ("reply-42@parvandeh.example",)


def test_forwarded_message_is_not_a_bounce():
    outer = EmailMessage()
    outer["From"] = "ali@example.com"
    outer.set_content("see below")
    outer.add_attachment(email.message_from_bytes(ORIGINAL, policy=default))
    msg = email.message_from_bytes(bytes(outer), policy=default)
    assert bounced_message_ids(msg) == ()
    assert detect_automatic(msg, "ali@example.com") == ""


def test_malformed_headers_do_not_raise():
    raw = b"From: =?utf-8?b?broken\r\nContent-Type: multipart/report; report-type=\r\nAuto-Submitted:\r\n\r\nx"
    msg = email.message_from_bytes(raw, policy=default)
    assert detect_automatic(msg, "") == ""
    assert bounced_message_ids(msg) == ()


def test_report_with_broken_boundary_still_names_the_original():
    raw = _dsn(ORIGINAL).replace(b'boundary="BB"', b"bo")
    msg = email.message_from_bytes(raw, policy=default)
    assert bounced_message_ids(msg) == ("reply-42@parvandeh.example",)
