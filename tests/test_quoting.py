from ingest.quoting import trim_quoted


def test_gmail_english_reply_is_cut_at_wrapped_header():
    text = (
        "The repair shop sent the invoice, attached.\n"
        "\n"
        "On Mon, Jan 1, 2024 at 10:00 AM Ali Rezaei via Parvandeh <\n"
        "claims@parvandeh.example> wrote:\n"
        "\n"
        "> Please send the invoice.\n"
        "> Thanks\n"
    )
    assert trim_quoted(text) == "The repair shop sent the invoice, attached."


def test_gmail_english_reply_on_one_line():
    text = "Thanks!\n\nOn Tue, 2 Jan 2024, Sara <sara@example.com> wrote:\n> hello\n"
    assert trim_quoted(text) == "Thanks!"


def test_persian_gmail_reply_with_bidi_marks_is_cut():
    text = (
        "مدارک خسارت را فرستادم.\n"
        "\n"
        "\u202bدر تاریخ سه‌شنبه ۹ ژانویهٔ ۲۰۲۴ ساعت ۱۰:۱۵ کارشناس <claims@parvandeh.example>\n"
        "نوشت:\u202c\n"
        "\n"
        "> لطفا مدارک را بفرستید\n"
    )
    assert trim_quoted(text) == "مدارک خسارت را فرستادم."


def test_outlook_original_message_block_is_cut():
    text = (
        "Please find the police report attached.\n\n"
        "-----Original Message-----\n"
        "From: Claims <claims@parvandeh.example>\n"
        "Sent: Monday, January 1, 2024 10:00 AM\n"
        "To: ali@example.com\n"
        "Subject: PV-1405-000123\n\n"
        "We need the police report.\n"
    )
    assert trim_quoted(text) == "Please find the police report attached."


def test_outlook_underscore_separator_then_from_is_cut():
    text = (
        "Done.\n\n"
        "________________________________\n"
        "From: Claims <claims@parvandeh.example>\n"
        "Sent: Monday, January 1, 2024 10:00\n"
        "Subject: Re: claim\n\nold text\n"
    )
    assert trim_quoted(text) == "Done."


def test_outlook_from_sent_block_without_separator_is_cut():
    text = "Yes, tomorrow.\n\nFrom: Claims <c@x.ir>\nSent: Monday\nTo: me\n\nold\n"
    assert trim_quoted(text) == "Yes, tomorrow."


def test_trailing_quoted_block_and_signature_are_removed():
    text = "I agree.\n\n-- \nAli Rezaei\nMobile 0912\n\n> older text\n> more\n"
    assert trim_quoted(text) == "I agree."


def test_mobile_sign_offs_are_removed():
    assert trim_quoted("Car is at the garage.\n\nSent from my iPhone") == "Car is at the garage."
    assert trim_quoted("ماشین در تعمیرگاه است.\n\nارسال شده از iPhone من") == "ماشین در تعمیرگاه است."


def test_sign_off_words_in_the_middle_of_prose_are_kept():
    text = "ارسال شده از طرف بیمه‌گر:\nنامه اول\nنامه دوم\nنامه سوم\nنامه چهارم"
    assert trim_quoted(text) == text


def test_forwarded_content_is_not_treated_as_quote():
    text = (
        "FYI\n\n---------- Forwarded message ----------\n"
        "From: Insurer <a@insurer.example>\nDate: Mon, 1 Jan 2024\nSubject: claim\n\nDetails here\n"
    )
    assert "Details here" in trim_quoted(text)


def test_everything_quoted_returns_original():
    text = "> only a quote\n> nothing else\n"
    assert trim_quoted(text) == text


def test_bottom_posted_reply_keeps_the_new_text():
    text = "On Mon, Jan 1, 2024 at 10:00 Ali <a@x.ir> wrote:\n> question?\n\nMy answer is yes.\n"
    assert trim_quoted(text) == "My answer is yes."


def test_prose_starting_with_on_is_not_a_header():
    text = "On the way home my car was hit.\nThe other driver wrote: nothing.\n"
    assert trim_quoted(text) == text.rstrip()


def test_plain_text_without_quotes_is_unchanged():
    assert trim_quoted("Hello\nworld") == "Hello\nworld"
    assert trim_quoted("") == ""


def test_a_customers_own_list_of_fields_is_not_an_outlook_header():
    # "از/به/تاریخ" are From/To/Date, but "محل" (place) is no field Outlook writes.
    text = ("سلام، گزارش تصادف را می‌فرستم:\nاز: تهران\nبه: کرج\nتاریخ: ۱۴۰۵/۰۸/۲۰ ساعت ۱۴:۳۰\n"
            "محل: آزادراه تهران-کرج، کیلومتر ۱۲\nتلفن همراه: ۰۹۱۲۱۲۳۴۵۶۷")
    assert trim_quoted(text) == text


def test_persian_outlook_block_is_cut():
    text = ("مدارک را فرستادم.\n\nاز: کارشناس <claims@parvandeh.example>\nارسال شده: دوشنبه ۱ ژانویه ۲۰۲۴\n"
            "به: ali@example.com\nموضوع: PV-1405-000123\n\nلطفا مدارک را بفرستید.\n")
    assert trim_quoted(text) == "مدارک را فرستادم."


def test_wrote_at_the_end_of_a_sentence_is_prose_not_a_header():
    text = "On 12 Nov at 10:30 my car was hit by a truck. The other driver wrote:\nit was my fault, sorry\n"
    assert trim_quoted(text) == text.rstrip()
