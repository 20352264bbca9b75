import base64
import hashlib
from datetime import timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.mime import MalformedMessage, decode_text, html_to_text, parse_email, sanitize_filename

CORPUS = Path("/work/shared/corpus/mail-spamscope")
CORPUS_FILES = sorted(CORPUS.iterdir()) if CORPUS.is_dir() else []

PERSIAN = "سلام، خسارت خودرو پژو ۲۰۶ در تصادف"
# What windows-1256 can carry: Arabic yeh/kaf and ASCII digits (see the corpus README).
LEGACY_PERSIAN = "سلام، گزارش خسارت خودروي پژو 206 در تصادف كرج"
FIXED_LEGACY = "سلام، گزارش خسارت خودروی پژو 206 در تصادف کرج"

HEAD = (
    b"From: Ali Rezaei <Ali@Example.com>\r\n"
    b"To: claims@parvandeh.example\r\n"
    b"Subject: claim\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0330\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
)


def _raw(body: bytes, content_type: bytes, cte: bytes = b"8bit", head: bytes = HEAD) -> bytes:
    return head + b"Content-Type: " + content_type + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + body


def _roundtrip(msg: EmailMessage) -> bytes:
    for name, value in (("From", "Ali <ali@example.com>"), ("To", "claims@parvandeh.example")):
        if name not in msg:
            msg[name] = value
    return bytes(msg)


# --- corpus and robustness ------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_corpus_mail_parses_or_is_rejected_with_a_reason(path):
    try:
        msg = parse_email(path.read_bytes())
    except MalformedMessage as exc:
        assert str(exc)
        return
    assert msg.channel == "email" and msg.kind == "message"
    assert msg.channel_message_id
    assert msg.text or msg.attachments or msg.subject


def test_corpus_bounce_threads_to_the_original():
    msg = parse_email((CORPUS / "mail_malformed_2").read_bytes())
    assert msg.auto_reason == "bounce"
    assert not msg.opens_ticket
    assert "004801d1fc84$01c934ac$b247f0b7$@infospacemail.com" in msg.references


def test_corpus_boundary_mismatch_is_recovered():
    msg = parse_email((CORPUS / "mail_malformed_3").read_bytes())
    assert "información de la compañía" in msg.text
    assert "Content-Transfer-Encoding" not in msg.text


def test_corpus_display_name_with_encoded_comma_and_address_as_name():
    assert parse_email((CORPUS / "mail_test_18").read_bytes()).sender.display_name == "LastßlName, FirstName"
    sender = parse_email((CORPUS / "mail_test_19").read_bytes()).sender
    assert (sender.value, sender.display_name) == ("bob@example.com", "alice@example.com")


def test_empty_or_headerless_input_is_malformed():
    for raw in (b"", b"  \r\n", b"\x00\x01\x02 just noise"):
        with pytest.raises(MalformedMessage, match="."):
            parse_email(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_malformed(raw):
    try:
        parse_email(raw)
    except MalformedMessage:
        pass


_SEEDS = [p.read_bytes() for p in CORPUS_FILES if p.stat().st_size < 10_000]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SEEDS or [b"From: a@b.c\r\n\r\nx"]),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 3), st.binary(max_size=8)), max_size=8),
)
def test_mutated_corpus_mail_only_ever_raises_malformed(seed, mutations):
    raw = bytearray(seed)
    for position, operation, chunk in mutations:
        at = position % (len(raw) + 1)
        if operation == 0:
            raw[at:at] = chunk  # insert
        elif operation == 1:
            del raw[at : at + len(chunk) + 1]  # delete
        elif operation == 2:
            raw[at : at + len(chunk)] = chunk  # overwrite
        else:
            raw[at:at] = b"\r\n" + chunk + b": =?utf-8?b?" + chunk + b"?=\r\n"  # header-ish noise
    try:
        parse_email(bytes(raw))
    except MalformedMessage:
        pass


def test_part_limit_is_respected():
    msg = EmailMessage()
    msg.set_content("main text")
    for i in range(20):
        msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"f{i}.bin")
    parsed = parse_email(_roundtrip(msg), max_parts=5)
    assert len(parsed.attachments) < 5
    assert any(name == "note" for name, _ in parsed.meta)


# --- headers ------------------------------------------------------------------------------------------


def test_identity_threading_and_date_fields():
    head = (
        b"From: =?utf-8?b?" + base64.b64encode("علی رضایی".encode()) + b"?= <Ali@Example.COM>\r\n"
        b"To: Claims <claims@parvandeh.example>, sara@example.com\r\n"
        b"Cc: Sara <SARA@example.com>\r\n"
        b"Delivered-To: desk@parvandeh.example\r\n"
        b"Subject: Re: claim\r\n"
        b"Date: Mon, 01 Jan 2024 10:00:00 +0330\r\n"
        b"Message-ID:  <abc.123@mail.example.com> \r\n"
        b"In-Reply-To: <ours-1@parvandeh.example>\r\n"
        b"References: <first@x.example>\r\n <ours-1@parvandeh.example>\r\n"
        b"X-Mailer: Thunderbird\r\n"
    )
    msg = parse_email(_raw(b"hello", b"text/plain; charset=us-ascii", head=head))
    assert msg.sender.value == "ali@example.com"
    assert msg.sender.display_name == "علی رضایی"
    assert msg.conversation_key == "email:ali@example.com"
    assert [r.value for r in msg.recipients] == [
        "claims@parvandeh.example",
        "sara@example.com",
        "desk@parvandeh.example",
    ]
    assert msg.message_id == msg.channel_message_id == "abc.123@mail.example.com"
    assert msg.in_reply_to == "ours-1@parvandeh.example"
    assert msg.references == ("first@x.example", "ours-1@parvandeh.example")
    assert msg.sent_at is not None and msg.sent_at.utcoffset().total_seconds() == 3.5 * 3600
    assert ("x-mailer", "Thunderbird") in msg.meta
    assert msg.auto_reason == "" and msg.opens_ticket


def test_missing_message_id_uses_content_digest_and_broken_date_is_none():
    raw = b"From: ali@example.com\r\nSubject: x\r\nDate: yesterday-ish\r\n\r\nbody\r\n"
    msg = parse_email(raw)
    assert msg.message_id == ""
    assert msg.channel_message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert msg.sent_at is None


def test_date_without_zone_is_utc():
    msg = parse_email(b"From: ali@example.com\r\nDate: Mon, 01 Jan 2024 10:00:00 -0000\r\n\r\nx")
    assert msg.sent_at.tzinfo == timezone.utc


def test_sender_falls_back_to_sender_then_return_path():
    raw = b"From: undisclosed\r\nSender: Desk <desk@insurer.example>\r\nSubject: x\r\n\r\nbody"
    assert parse_email(raw).sender.value == "desk@insurer.example"
    raw = b"From: nobody\r\nReturn-Path: <rp@insurer.example>\r\n\r\nbody"
    assert parse_email(raw).sender.value == "rp@insurer.example"


@pytest.mark.parametrize("encoding", ["b", "q"])
def test_persian_utf8_subject_rfc2047(encoding):
    msg = EmailMessage()
    msg["Subject"] = PERSIAN
    msg.set_content("x")
    raw = _roundtrip(msg)
    assert b"=?utf-8?" in raw
    if encoding == "q":
        q = "".join(f"={b:02X}" if b > 127 or chr(b) in "=?_ " else chr(b) for b in PERSIAN.encode())
        raw = _raw(b"x", b"text/plain", head=b"From: a@example.com\r\nSubject: =?UTF-8?Q?" + q.encode() + b"?=\r\n")
    assert parse_email(raw).subject == PERSIAN


def test_broken_rfc2047_words_still_decode():
    data = PERSIAN.encode()
    # A multibyte character split across two words, unpadded base64, and a lowercase label.
    first, second = base64.b64encode(data[:5]).rstrip(b"="), base64.b64encode(data[5:])
    head = b"From: a@example.com\r\nSubject: =?utf-8?B?" + first + b"?=\r\n =?UTF-8?b?" + second + b"?=\r\n"
    assert parse_email(_raw(b"x", b"text/plain", head=head)).subject == PERSIAN
    # Unterminated word: kept as text, not an error.
    head = b"From: a@example.com\r\nSubject: =?utf-8?B?2LPZhNin2YU\r\n"
    assert "2LPZhNin2YU" in parse_email(_raw(b"x", b"text/plain", head=head)).subject


def test_mislabelled_encoded_word_and_raw_8bit_subject():
    cp1256 = LEGACY_PERSIAN.encode("cp1256")
    head = b"From: a@example.com\r\nSubject: =?iso-8859-1?B?" + base64.b64encode(cp1256) + b"?=\r\n"
    assert parse_email(_raw(b"x", b"text/plain", head=head)).subject == FIXED_LEGACY
    head = b"From: a@example.com\r\nSubject: " + PERSIAN.encode() + b"\r\n"
    assert parse_email(_raw(b"x", b"text/plain", head=head)).subject == PERSIAN


# --- charsets ----------------------------------------------------------------------------------------


def test_windows_1256_body_correctly_labelled_gets_persian_letters():
    raw = _raw(LEGACY_PERSIAN.encode("cp1256"), b"text/plain; charset=windows-1256")
    assert parse_email(raw).text == FIXED_LEGACY


@pytest.mark.parametrize(
    "content_type", [b"text/plain; charset=iso-8859-1", b"text/plain; charset=us-ascii", b"text/plain"]
)
def test_windows_1256_body_mislabelled_or_unlabelled(content_type):
    raw = _raw(LEGACY_PERSIAN.encode("cp1256"), content_type)
    assert parse_email(raw).text == FIXED_LEGACY


@pytest.mark.parametrize("label", [b"windows-1256", b"iso-8859-1"])
def test_utf8_persian_labelled_as_legacy_charset(label):
    raw = _raw(PERSIAN.encode(), b"text/plain; charset=" + label)
    assert parse_email(raw).text == PERSIAN


def test_genuine_latin1_and_other_charsets_are_kept():
    assert decode_text("Je prépare mon été".encode("latin-1"), "iso-8859-1") == "Je prépare mon été"
    assert decode_text("Je prépare mon été".encode("cp1252"), None) == "Je prépare mon été"
    assert decode_text("代开各地增值税发票".encode("gb18030"), "gb2312") == "代开各地增值税发票"
    assert decode_text("Привет мир".encode("koi8-r"), "koi8-r") == "Привет мир"
    assert decode_text(b"plain", "no-such-charset") == "plain"
    # A stray broken byte in otherwise UTF-8 text must not flip the whole body to windows-1256.
    damaged = "Профиль пользователя обновлён".encode() + b"\xd1f" + "Спасибо за регистрацию".encode()
    assert decode_text(damaged, "utf-8").startswith("Профиль пользователя обновлён")


CP1256_PERSIAN = "سلام، ماشين من ديروز در اتوبان تصادف كرد و گزارش پليس را فرستادم."


@pytest.mark.parametrize("label", ["koi8-r", "iso-8859-2", "iso-8859-5", "windows-1251", "iso-8859-7"])
def test_windows_1256_persian_under_another_single_byte_label_is_read_as_persian(label):
    assert decode_text(CP1256_PERSIAN.encode("cp1256"), label) == CP1256_PERSIAN


@pytest.mark.parametrize(("label", "text"), [
    ("koi8-r", "Привет, мир! Это обычный русский текст о страховании."),
    ("windows-1251", "Привет, мир! Это обычный русский текст о страховании."),
    ("iso-8859-2", "Zażółć gęślą jaźń. Ubezpieczenie samochodu i naprawa."),
    ("iso-8859-7", "Καλημέρα κόσμε, αυτό είναι ένα ελληνικό κείμενο."),
])
def test_genuine_text_in_those_labels_is_kept(label, text):
    assert decode_text(text.encode(label), label) == text


@pytest.mark.parametrize("declared", ["utf-8", None])
def test_short_persian_utf8_with_a_cut_or_lost_byte_stays_persian(declared):
    # Under 20 letters, one broken sequence is over the 1-in-20 share; it must not turn the whole
    # text into windows-1256 mojibake (ط³ظ„ط§ظ…), which reads as "mostly Arabic" too.
    assert decode_text("سلام، ماشینم تصادف کرد".encode() + b"\xd8", declared) == "سلام، ماشینم تصادف کرد\ufffd"
    assert decode_text("خسارت بدنه ۲۰۶".encode()[:-1], declared) == "خسارت بدنه ۲۰\ufffd"
    lost = "سلام، ماشینم تصادف کرد".encode()
    assert decode_text(lost[:3] + lost[4:], declared) == "س\ufffdام، ماشینم تصادف کرد"


def test_badly_damaged_utf8_shows_its_holes_rather_than_windows_1256_mojibake():
    damaged = bytearray("سلام، ماشینم تصادف کرد و خسارت دیده است".encode())
    for at in (3, 11, 21, 31, 41):
        damaged[at] = 0x41
    text = decode_text(bytes(damaged), "utf-8")
    assert text.count("\ufffd") >= 3 and "خسارت دیده است" in text and "ط" not in text


def test_quoted_printable_and_broken_base64_bodies():
    qp = "".join(f"={b:02X}" for b in PERSIAN.encode())
    raw = _raw(qp.encode(), b"text/plain; charset=utf-8", b"quoted-printable")
    assert parse_email(raw).text == PERSIAN
    encoded = base64.b64encode(PERSIAN.encode()).rstrip(b"=")
    broken = encoded[:10] + b"\r\n!!" + encoded[10:] + b"A"  # stray characters, no padding, odd length
    raw = _raw(broken, b"text/plain; charset=utf-8", b"base64")
    assert parse_email(raw).text.startswith(PERSIAN[:-1])


# --- structure -------------------------------------------------------------------------------------------

HTML = (
    "<html><head><title>t</title><style>p {color: red}</style></head><body>"
    "<script>alert('x')</script>"
    "<p>سلام\n   آقای رضایی</p><div>خسارت شما<br>ثبت شد</div>"
    "<ul><li>مورد اول</li><li>مورد دوم</li></ul>"
    "<p><a href='https://parvandeh.example/c/123'>پیگیری پرونده</a> "
    "<a href='https://x.example'>https://x.example</a></p>"
    "</body></html>"
)


def test_html_to_text_keeps_structure_and_links():
    text = html_to_text(HTML)
    assert text == (
        "سلام آقای رضایی\n\n"
        "خسارت شما\nثبت شد\n\n"
        "- مورد اول\n- مورد دوم\n\n"
        "پیگیری پرونده (https://parvandeh.example/c/123) https://x.example"
    )


def test_html_only_persian_mail():
    msg = EmailMessage()
    msg["Subject"] = "پرونده"
    msg.set_content(HTML, subtype="html")
    parsed = parse_email(_roundtrip(msg))
    assert parsed.html.strip().startswith("<html>")
    assert "خسارت شما\nثبت شد" in parsed.text
    assert "alert" not in parsed.text and "color" not in parsed.text


def test_html_charset_from_meta_tag():
    html = "<html><head><meta charset='windows-1256'></head><body>" + LEGACY_PERSIAN + "</body></html>"
    raw = _raw(html.encode("cp1256"), b"text/html")
    assert parse_email(raw).text == FIXED_LEGACY


def test_alternative_prefers_plain_and_falls_back_to_html():
    msg = EmailMessage()
    msg.set_content("plain version")
    msg.add_alternative("<p>html version</p>", subtype="html")
    parsed = parse_email(_roundtrip(msg))
    assert parsed.text == "plain version"
    assert "html version" in parsed.html

    msg = EmailMessage()
    msg.set_content("   \n")
    msg.add_alternative("<p>only the html says something</p>", subtype="html")
    assert parse_email(_roundtrip(msg)).text == "only the html says something"


def test_inline_image_in_related_html_is_an_attachment():
    msg = EmailMessage()
    msg.set_content("see photo")
    msg.add_alternative("<p>see photo <img src='cid:p1'></p>", subtype="html")
    msg.get_payload()[1].add_related(b"\x89PNG...", "image", "png", cid="<p1>")
    parsed = parse_email(_roundtrip(msg))
    assert parsed.text == "see photo"
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("attachment-1.png", "image/png", b"\x89PNG...")
    ]


def test_nested_forward_includes_text_header_block_and_attachments():
    inner = EmailMessage()
    inner["From"] = "Insurer <desk@insurer.example>"
    inner["Date"] = "Sun, 31 Dec 2023 09:00:00 +0330"
    inner["Subject"] = "ارزیابی خسارت"
    inner.set_content("متن نامه بیمه‌گر")
    inner.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="report.pdf")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: ارزیابی خسارت"
    outer.set_content("برای اطلاع")
    outer.add_attachment(inner)
    parsed = parse_email(_roundtrip(outer))
    assert parsed.text.startswith("برای اطلاع\n\n---------- Forwarded message ----------\n")
    assert "From: Insurer <desk@insurer.example>" in parsed.text
    assert "Subject: ارزیابی خسارت" in parsed.text
    assert "Date: Sun, 31 Dec 2023 09:00:00 +0330" in parsed.text
    assert parsed.text.endswith("متن نامه بیمه‌گر")
    assert [(a.filename, a.data) for a in parsed.attachments] == [("report.pdf", b"%PDF-1.4")]
    assert "متن نامه بیمه‌گر" in parsed.display_text


def test_rfc2231_persian_filename_and_path_traversal():
    msg = EmailMessage()
    msg.set_content("attached")
    msg.add_attachment(b"img", maintype="image", subtype="jpeg", filename=("utf-8", "fa", "عکس خودرو.jpg"))
    msg.add_attachment(b"evil", maintype="application", subtype="octet-stream", filename="../../etc/passwd")
    raw = _roundtrip(msg)
    assert b"filename*=utf-8''" in raw
    names = [a.filename for a in parse_email(raw).attachments]
    assert names == ["عکس خودرو.jpg", "passwd"]


def test_rfc2231_continuations_and_raw_utf8_filenames():
    encoded = "".join(f"%{b:02X}" for b in "گزارش کروکی.pdf".encode())
    raw = _raw(
        b"%PDF",
        b"application/pdf\r\nContent-Disposition: attachment;\r\n"
        b" filename*0*=utf-8'fa'" + encoded[:30].encode() + b";\r\n filename*1*=" + encoded[30:].encode(),
        b"binary",
    )
    assert parse_email(raw).attachments[0].filename == "گزارش کروکی.pdf"
    raw = _raw(b"%PDF", 'application/pdf; name="کروکی.pdf"'.encode(), b"binary")
    assert parse_email(raw).attachments[0].filename == "کروکی.pdf"


def test_sanitize_filename():
    assert sanitize_filename("..\\..\\windows\\system32\\cmd.exe") == "cmd.exe"
    assert sanitize_filename("/etc/passwd") == "passwd"
    assert sanitize_filename(".bashrc") == "bashrc"
    assert sanitize_filename("in\x00vo\x1bice\u202egpj.exe") == "invo_ice_gpj.exe"
    assert sanitize_filename("con.txt") == "_con.txt"
    assert sanitize_filename("") == "attachment-1.bin"
    assert sanitize_filename("../..", fallback="attachment-7.bin") == "attachment-7.bin"
    long = sanitize_filename("ب" * 400 + ".pdf")
    assert len(long) == 150 and long.endswith(".pdf")


def test_tnef_part_is_kept_as_winmail_dat():
    msg = EmailMessage()
    msg.set_content("see attached")
    msg.add_attachment(b"\x78\x9f\x3e\x22tnef", maintype="application", subtype="ms-tnef")
    attachment = parse_email(_roundtrip(msg)).attachments[0]
    assert (attachment.filename, attachment.content_type, attachment.data) == (
        "winmail.dat",
        "application/ms-tnef",
        b"\x78\x9f\x3e\x22tnef",
    )


def test_huge_attachment_is_recorded_without_bytes():
    msg = EmailMessage()
    msg.set_content("big file")
    msg.add_attachment(b"z" * 5000, maintype="video", subtype="mp4", filename="dashcam.mp4")
    parsed = parse_email(_roundtrip(msg), max_attachment_bytes=1000)
    attachment = parsed.attachments[0]
    assert attachment.data is None and attachment.size == 5000 and attachment.remote_ref == ""
    assert attachment.content_type == "video/mp4" and attachment.filename == "dashcam.mp4"
    assert any(name == "note" and "dashcam.mp4" in note for name, note in parsed.meta)


def test_unknown_part_is_kept_as_attachment():
    raw = _raw(b"\x00\x01binary", b"application/x-made-up", b"binary")
    parsed = parse_email(raw)
    assert parsed.text == ""
    assert parsed.attachments[0].content_type == "application/x-made-up"


# --- replies and automatic mail ------------------------------------------------------------------------


def test_gmail_english_reply_display_text():
    body = b"Invoice attached.\r\n\r\nOn Mon, Jan 1, 2024 at 10:00 AM Claims <claims@parvandeh.example> wrote:\r\n> send it\r\n"
    parsed = parse_email(_raw(body, b"text/plain; charset=utf-8"))
    assert parsed.display_text == "Invoice attached."
    assert "> send it" in parsed.text


def test_persian_gmail_reply_display_text_with_arabic_letters_fixed():
    body = "مدارك ارسال شد.\n\nدر تاريخ دوشنبه ۱ ژانویه ۲۰۲۴ ساعت ۱۰:۰۰ Claims <claims@parvandeh.example> نوشت:\n> مدارک را بفرستید\n"
    parsed = parse_email(_raw(body.encode(), b"text/plain; charset=utf-8"))
    assert parsed.display_text == "مدارک ارسال شد."


def test_outlook_reply_display_text():
    body = (
        b"Yes, the car is at the garage.\r\n\r\n-----Original Message-----\r\n"
        b"From: Claims <claims@parvandeh.example>\r\nSent: Monday, January 1, 2024 10:00 AM\r\n"
        b"Subject: RE: claim\r\n\r\nWhere is the car?\r\n"
    )
    assert parse_email(_raw(body, b"text/plain")).display_text == "Yes, the car is at the garage."


def test_dsn_bounce_recovers_original_message_id():
    original = (
        b"From: claims@parvandeh.example\r\nMessage-ID: <reply-42@parvandeh.example>\r\n"
        b"Subject: [PV-1405-000123]\r\n\r\nhello\r\n"
    )
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nReturn-Path: <>\r\n"
        b"Message-ID: <bounce-1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        b"--BB\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\n"
        b"--BB\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n--BB--\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.auto_reason == "bounce" and parsed.is_automatic and not parsed.opens_ticket
    assert parsed.references == ("reply-42@parvandeh.example",)
    assert parsed.text.startswith("Delivery failed.")


def test_out_of_office_and_bulk_are_automatic():
    msg = EmailMessage()
    msg["Auto-Submitted"] = "auto-replied"
    msg["Subject"] = "Out of office"
    msg.set_content("I am away until Saturday.")
    parsed = parse_email(_roundtrip(msg))
    assert parsed.auto_reason == "auto-submitted:auto-replied" and not parsed.opens_ticket

    msg = EmailMessage()
    msg["Precedence"] = "bulk"
    msg.set_content("newsletter")
    assert parse_email(_roundtrip(msg)).auto_reason == "precedence:bulk"



# --- the fast paths agree with what they stand in for --------------------------------------------


def test_letters_guard_matches_persian_fix_letters():
    from ingest import mime, persian

    probe = "".join(chr(c) for c in range(0x80, 0x10000) if not 0xD800 <= c <= 0xDFFF)
    fixed = persian.fix_letters(probe)
    assert len(fixed) == len(probe)
    assert {a for a, b in zip(probe, fixed) if a != b} == set(mime._LETTERS_TO_FIX)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab.-_+=@ ,\t\"<>()", max_size=20), min_size=1, max_size=3))
def test_plain_address_fast_path_matches_getaddresses(values):
    import email.utils

    from ingest.mime import _addresses

    assert _addresses(values) == email.utils.getaddresses(values)


def test_mime_parameters_read_like_the_stdlib_header_parser():
    cases = [
        # quoted, with ";" inside quotes and an escaped quote
        (b'application/pdf; name="a;b\\"c.pdf"', None, "a;b_c.pdf"),  # sanitize_filename: " → _
        # unterminated quote (header cut short) and junk after the closing quote
        (b"application/pdf", b'attachment; filename="report.p', "report.p"),
        (b"application/pdf", b'attachment; filename="report.pdf"junk', "report.pdf"),
        # upper-case parameter name, filename preferred over name
        (b'application/pdf; NAME="b.pdf"', b'ATTACHMENT; FileName="a.pdf"', "a.pdf"),
        (b'application/pdf; NAME="b.pdf"', b"attachment", "b.pdf"),
        # RFC 2231 in a charset the sender mislabelled, and one Python does not know
        (b"application/pdf", b"attachment; filename*=iso-8859-1''%DA%DF%D3.pdf", "عكس.pdf"),  # windows-1256 kaf
        (b"application/pdf", b"attachment; filename*=x-bogus''%D8%B9%DA%A9%D8%B3.pdf", "عکس.pdf"),
        # an encoded word outside quotes, which the stdlib's header parser leaves undecoded
        (b"application/pdf; name==?utf-8?B?2LnaqdizLnBkZg==?=", None, "عکس.pdf"),
    ]
    for content_type, disposition, filename in cases:
        head = content_type + (b"\r\nContent-Disposition: " + disposition if disposition else b"")
        parsed = parse_email(_raw(b"%PDF", head, b"binary"))
        assert [a.filename for a in parsed.attachments] == [filename], (content_type, disposition)
    for content_type in (b'text/plain; charset="us-ascii" (Plain text)', b"TEXT/PLAIN; CHARSET=UTF-8; format=flowed"):
        assert parse_email(_raw(PERSIAN.encode(), content_type)).text == PERSIAN


def test_the_mail_normaliser_leaves_keeping_an_attachment_to_the_configured_limit(tmp_path: Path) -> None:
    """`[claims] max_attachment_bytes` decides when the files are stored; the parser's own
    25 MiB default dropped a larger file from mail even with a higher limit configured."""
    from datetime import UTC, datetime

    from ingest.blobs import BlobStore
    from ingest.email_payload import normalise_mime
    from ingest.records import RawPayload
    from ingest.service import store_files

    scan = b"%PDF" + bytes(26 * 2**20)
    mail = EmailMessage()
    mail["From"] = "ali@example.com"
    mail["Subject"] = "scan"
    mail.set_content("attached")
    mail.add_attachment(scan, maintype="application", subtype="pdf", filename="scan.pdf")
    msg = normalise_mime(RawPayload("email", "smtp", "k", "mime", mail.as_bytes(), datetime.now(UTC)))
    blobs = BlobStore(tmp_path)
    ((size, digest),) = store_files(msg, blobs, 30 * 2**20)
    assert (size, digest) == (len(scan), hashlib.sha256(scan).hexdigest())
    assert store_files(msg, blobs, 25 * 2**20) == [(len(scan), None)]  # over a lower limit: not kept
