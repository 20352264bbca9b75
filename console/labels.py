"""Every string the console itself shows, in Persian and English, keyed by a short name.

Customer text, queue names and claim references are not here: they are shown as they come. A
refusal of the agent API is worded here by its `reason` (`error.*`), and shown as the server
words it for a reason with no label. Values go into `{placeholders}`; a number among them takes
the agent's digits (`render.number`), a string (a reference, a name) stays as written. `say` gives the
string in logical order, for a sentence a caller completes with customer text and reorders
whole (`render.safe_text`); `shown` gives it in the order a terminal without bidi prints it, for
widgets that take a plain string (headers, key descriptions, notifications). Pure."""

from __future__ import annotations

from typing import Any

from console.render import Prefs, display_lines, number

# key: (Persian, English)
LABELS: dict[str, tuple[str, str]] = {
    "title": ("پرونده", "Parvandeh"),
    # -- keys (binding descriptions on the key bar) -------------------------------------------
    "key.down": ("پایین", "Down"),
    "key.up": ("بالا", "Up"),
    "key.help": ("راهنما", "Help"),
    "key.search": ("جستجو", "Search"),
    "key.supervisor": ("سرپرست", "Supervisor"),
    "key.reports": ("گزارش‌ها", "Reports"),
    "key.availability": ("حضور", "Availability"),
    "key.quit": ("خروج", "Quit"),
    "key.take": ("برداشتن", "Take"),
    "key.assign": ("واگذاری", "Assign"),
    "key.status": ("وضعیت", "Status"),
    "key.priority": ("اولویت", "Priority"),
    "key.move": ("انتقال", "Move"),
    "key.back": ("بازگشت", "Back"),
    "key.reply": ("پاسخ", "Reply"),
    "key.note": ("یادداشت", "Note"),
    "key.contact": ("مخاطب", "Contact"),
    "key.contact_screen": ("صفحه مخاطب", "Contact screen"),
    "key.link_sender": ("پیوند فرستنده", "Link sender"),
    "key.read_on": ("ادامه متن", "Read on"),
    "key.read_back": ("متن قبلی", "Read back"),
    "key.send": ("ارسال", "Send"),
    "key.cancel": ("انصراف", "Cancel"),
    "key.close": ("بستن", "Close"),
    "key.yes": ("بله", "Yes"),
    "key.no": ("خیر", "No"),
    "key.merge": ("ادغام تکراری", "Merge duplicate"),
    "key.undo": ("لغو ادغام", "Undo merge"),
    "key.split": ("جداسازی شناسه", "Split identity"),
    "key.refresh": ("تازه‌سازی", "Refresh"),
    "key.by": ("بر اساس…", "By…"),
    # -- help (?) -------------------------------------------------------------------------------
    "help.move": ("حرکت پایین / بالا", "move down / up"),
    "help.read": ("ادامه (یا ctrl+d) / بازگشت در پیام بلند", "read on (or ctrl+d) / back in a long message"),
    "help.open": ("باز کردن صف یا پرونده", "open the queue or ticket"),
    "help.tab": ("صف‌ها ↔ پرونده‌ها", "queues ↔ tickets"),
    "help.columns": ("ستون‌های دیگر فهرست", "the list's other columns"),
    "help.reply": ("پاسخ در کانال پیام انتخاب‌شده", "reply on the channel of the highlighted message"),
    "help.note": ("یادداشت داخلی", "internal note"),
    "help.take": ("برداشتن پرونده", "take the ticket"),
    "help.assign": ("واگذاری (خالی: بازگشت به صف)", "assign (empty: back to the queue)"),
    "help.status": ("تغییر وضعیت", "change status"),
    "help.priority": ("تغییر اولویت", "change priority"),
    "help.queue": ("انتقال به صف دیگر", "move to another queue"),
    "help.contact": ("پنل مخاطب / صفحه مخاطب (ادغام، لغو، جداسازی)",
                     "contact panel / contact screen (merge, undo, split)"),
    "help.link": ("پیوند پیام یک ناشناس به مخاطب پرونده", "link a stranger's message to the claim's contact"),
    "help.availability": ("حضور شما (در دسترس، غایب، آفلاین)", "your availability (available, away, offline)"),
    "help.search": ("جستجو", "search"),
    "help.supervisor": ("نمای سرپرست (g: خواندن دوباره)", "supervisor view (g reads again)"),
    "help.reports": ("گزارش‌ها (سرپرستان؛ b: گروه‌بندی، g: خواندن دوباره)",
                     "reports (supervisors; b regroups, g reads again)"),
    "help.palette": ("فهرست فرمان‌ها", "command palette"),
    "help.back": ("بازگشت", "back"),
    "help.quit": ("خروج", "quit"),
    # -- the command palette --------------------------------------------------------------------
    "cmd.search": ("جستجوی پرونده‌ها", "Search claims"),
    "cmd.search.help": ("شماره پرونده، تلفن، ایمیل، کد ملی، متن",
                        "claim reference, phone, email, national id, text"),
    "cmd.supervisor": ("نمای سرپرست", "Supervisor view"),
    "cmd.supervisor.help": ("کارشناسان، بار کاری و نقض‌ها", "agents, load and breaches"),
    "cmd.reports": ("گزارش‌ها", "Reports"),
    "cmd.reports.help": ("باز، بسته، زمان پاسخ، رعایت SLA، سهم کانال‌ها",
                         "opened, closed, response times, SLA compliance, channel mix"),
    "cmd.keys": ("کلیدها", "Keys"),
    "cmd.keys.help": ("همه کلیدهای کنسول", "every key of the console"),
    "cmd.open": ("باز کردن {ref}", "Open {ref}"),
    "cmd.open.help": ("باز کردن این پرونده", "open this claim"),
    "cmd.take": ("برداشتن پرونده", "Take the ticket"),
    "cmd.take.help": ("واگذاری پرونده جاری به من", "assign the current ticket to me"),
    "cmd.assign": ("واگذاری پرونده", "Assign the ticket"),
    "cmd.assign.help": ("واگذاری پرونده جاری به یک کارشناس", "assign the current ticket to an agent"),
    "cmd.status": ("تغییر وضعیت", "Change status"),
    "cmd.status.help": ("پیش بردن پرونده جاری در گردش کار", "move the current claim through its workflow"),
    "cmd.priority": ("تغییر اولویت", "Change priority"),
    "cmd.priority.help": ("بالا یا پایین بردن اولویت پرونده جاری", "raise or lower the current ticket's priority"),
    "cmd.move": ("انتقال به صف دیگر", "Move to another queue"),
    "cmd.move.help": ("انتقال پرونده جاری به صف دیگر", "transfer the current ticket to another queue"),
    "cmd.reply": ("پاسخ به مشتری", "Reply to the customer"),
    "cmd.reply.help": ("پاسخ در کانال پیام انتخاب‌شده", "answer on the channel of the highlighted message"),
    "cmd.note": ("یادداشت داخلی", "Internal note"),
    "cmd.note.help": ("یادداشتی که فقط کارشناسان می‌بینند", "a note only agents see"),
    "cmd.toggle_contact": ("پنل مخاطب", "Contact panel"),
    "cmd.toggle_contact.help": ("نمایش یا پنهان کردن شناسه‌ها و پرونده‌های مشتری",
                         "show or hide the customer's identities and claims"),
    "cmd.copy_bot_link": ("کپی پیوند ربات", "Copy the bot link"),
    "cmd.copy_bot_link.help": ("پیوند امضاشده تلگرام/بله پرونده: به مشتری‌ای که آن را باز کند همان‌جا پاسخ داده می‌شود",
                          "the claim's signed Telegram/Bale link: a customer who follows it is answered there"),
    "cmd.link_sender": ("پیوند فرستنده به مخاطب پرونده", "Link the sender to the claim's contact"),
    "cmd.link_sender.help": ("فرستنده پیام انتخاب‌شده به مخاطب پرونده می‌پیوندد و پاسخ می‌گیرد (سرپرستان)",
                             "the highlighted message's sender joins the claim's contact and is answered (supervisors)"),
    "cmd.contact_screen": ("صفحه مخاطب", "Contact screen"),
    "cmd.contact_screen.help": ("شناسه‌ها، پرونده‌ها، تکراری‌ها؛ ادغام، لغو ادغام، جداسازی",
                                "identities, claims, duplicates; merge, undo a merge, split"),
    # -- the app --------------------------------------------------------------------------------
    "login_failed": ("ورود به API کارشناسان ممکن نشد: {error}", "cannot log in to the agent API: {error}"),
    "connection": ("API کارشناسان: {state}", "agent API: {state}"),
    "not_connected": ("اتصال به API کارشناسان برقرار نیست", "not connected to the agent API"),
    "sla_alert": ("{ref} {alert} {clock}", "{ref} {alert} {clock}"),
    "needs_supervisor.reports": ("گزارش‌ها نقش سرپرست می‌خواهد", "reports need the supervisor role"),
    "needs_supervisor.view": ("نمای سرپرست نقش سرپرست می‌خواهد", "the supervisor view needs the supervisor role"),
    "you_are": ("وضعیت شما: {status}", "you are {status}"),
    "you_are_moved": ("وضعیت شما: {status}؛ {count} پرونده منتقل شد", "you are {status}; {count} ticket(s) moved"),
    "your_availability": ("حضور شما", "Your availability"),
    # -- the main screen and the ticket list ----------------------------------------------------
    "col.queue": ("صف", "Queue"),
    "col.open": ("باز", "Open"),
    "col.risk": ("در خطر", "Risk"),
    "col.wait": ("منتظر", "Wait"),
    "col.oldest": ("قدیمی‌ترین انتظار", "Oldest waiting"),
    "col.claim": ("پرونده", "Claim"),
    "col.sla": ("SLA", "SLA"),
    "col.subject": ("موضوع", "Subject"),
    "col.contact": ("مخاطب", "Contact"),
    "col.prio": ("اولویت", "Prio"),
    "col.status": ("وضعیت", "Status"),
    "col.assignee": ("مسئول", "Assignee"),
    "col.channels": ("کانال", "Ch"),
    "col.agent": ("کارشناس", "Agent"),
    "col.role": ("نقش", "Role"),
    "col.queues": ("صف‌ها", "Queues"),
    "col.waiting": ("منتظر", "Waiting"),
    "col.unassigned": ("بی‌مسئول", "Unassigned"),
    "col.at_risk": ("در خطر", "At risk"),
    "col.breached": ("نقض‌شده", "Breached"),
    "all": ("همه", "all"),
    "all_queues": ("همه صف‌ها", "all queues"),
    # -- the ticket view --------------------------------------------------------------------------
    "no_contact": ("بدون مخاطب", "no contact"),
    "no_name": ("(بی‌نام)", "(no name)"),
    "identities": ("شناسه‌ها", "identities"),
    "claims": ("پرونده‌ها", "claims"),
    "contact_screen_hint": (" صفحه مخاطب", " contact screen"),
    "header_assignee": ("مسئول: {assignee}", "assignee: {assignee}"),
    "merged_into": (" · ادغام‌شده در {ref}", " · merged into {ref}"),
    "no_reply_channel": ("کانالی برای پاسخ به این پرونده نیست: {reason}", "no channel to answer this claim on: {reason}"),
    "reply_to": ("پاسخ به {ref}", "Reply to {ref}"),
    "note_on": ("یادداشت داخلی روی {ref}", "Internal note on {ref}"),
    "no_bot_link": ("پیوند رباتی نیست: هیچ ربات تلگرام یا بله‌ای با نام کاربری شناخته‌شده نیست",
                    "no bot link: no Telegram or Bale bot with a known username"),
    "copied": ("کپی شد:", "copied:"),
    "no_claim_contact": ("این پرونده مخاطب ندارد", "this claim has no contact"),
    "highlight_message": ("برای پیوند فرستنده، پیامی از مشتری را انتخاب کنید",
                          "highlight a customer's message to link its sender"),
    "already_contact": ("این فرستنده خود مخاطب پرونده است", "this sender is already the claim's contact"),
    "linked": ("پیوند شد: مخاطب #{sender} به #{claim} پیوست (ادغام {merge}؛ C و سپس u آن را لغو می‌کند)",
               "linked: contact #{sender} joined #{claim} (merge {merge}; C, then u undoes it)"),
    # -- the thread -----------------------------------------------------------------------------
    "system": ("سیستم", "system"),
    "internal_note": ("  (یادداشت داخلی)", "  (internal note)"),
    "not_contact": ("  مخاطب پرونده نیست", "  not the claim's contact"),
    "links_them": (" · l پیوندش می‌دهد", " · l links them"),
    "automatic": ("  خودکار: {reason}", "  automatic: {reason}"),
    "more_characters": ("… ({count} نویسه دیگر)", "… ({count} more characters)"),
    "bytes": (" ({size} بایت)", " ({size} B)"),
    "by_actor": ("  توسط {actor}", "  by {actor}"),
    "earlier": ("  ↑ {count} مورد قدیمی‌تر — برای نمایش enter", "  ↑ {count} earlier — enter to show"),
    # -- acting on a ticket ---------------------------------------------------------------------
    "done": ("{op}: {ref} انجام شد", "{op}: {ref} done"),
    "assign_to": ("واگذاری {ref} به (خالی: بازگشت به صف)", "Assign {ref} to (empty: back to the queue)"),
    "status_of": ("وضعیت {ref}", "Status of {ref}"),
    "priority_of": ("اولویت {ref}", "Priority of {ref}"),
    "move_to": ("انتقال {ref} به صف", "Move {ref} to queue"),
    # -- the composer ---------------------------------------------------------------------------
    "insert_template": ("درج یک پاسخ آماده", "Insert a template"),
    "composer_hint": ("ctrl+s ارسال · esc انصراف", "ctrl+s send · esc cancel"),
    "characters": ("{count} نویسه", "{count} characters"),
    "characters_sms": ("{count} نویسه · پیامک: {segments} بخش {encoding}",
                       "{count} characters · SMS {segments} segments {encoding}"),
    "characters_sms_one": ("{count} نویسه · پیامک: {segments} بخش {encoding}",
                           "{count} characters · SMS {segments} segment {encoding}"),
    "nothing_to_send": ("متنی برای ارسال نیست", "nothing to send"),
    # -- contacts (CRM) -------------------------------------------------------------------------
    "card_claims": ("    پرونده‌ها: {refs}", "    claims: {refs}"),
    "card_claims_more": ("    پرونده‌ها: {refs} و {count} پرونده دیگر", "    claims: {refs} and {count} more"),
    "card_no_claims": ("    بدون پرونده از آن خود", "    no claims of its own"),
    "link_question": ("فرستنده این پیام به مخاطب {ref} پیوند داده شود؟",
                      "Link the sender of this message to the contact of {ref}?"),
    "link_sender_is": ("فرستنده، {identity}، این مخاطب است", "The sender, {identity}, is contact"),
    "link_joins": ("به مخاطب پرونده (که می‌ماند) می‌پیوندد:", "It joins the claim's contact (kept):"),
    "link_moves": ("شناسه‌ها و پرونده‌هایش منتقل می‌شوند؛ پاسخ‌های {ref} به او هم می‌رسد. لغو: C و سپس u.",
                   "Its identities and claims move over; replies on {ref} go to it too. Undo: C, then u."),
    "merge_question": ("این دو مخاطب ادغام شوند ({reason})؟", "Merge these two contacts ({reason})?"),
    "merge_joins": ("می‌پیوندد به (که می‌ماند):", "joins (kept):"),
    "merge_moves": ("شناسه‌ها، پرونده‌ها و یادداشت‌هایش منتقل می‌شوند. لغو: u روی ادغام.",
                    "Its identities, claims and notes move over. Undo: u on the merge."),
    "confirm_yes": (" بله   ", " yes   "),
    "confirm_no": (" خیر (esc)", " no (esc)"),
    "section.identities": ("شناسه‌ها", "Identities"),
    "section.claims": ("پرونده‌ها", "Claims"),
    "section.duplicates": ("پیشنهاد تکراری‌ها", "Duplicate suggestions"),
    "section.merges": ("ادغام‌ها", "Merges"),
    "none": ("هیچ", "none"),
    "supervisors_only": ("فقط سرپرستان", "supervisors only"),
    "since": ("   از {when}", "   since {when}"),
    "contact_merged_into": ("ادغام‌شده در مخاطب #{id}", "merged into contact #{id}"),
    "merge_in": ("مخاطب #{id} در این مخاطب ادغام شد", "contact #{id} merged into this one"),
    "merge_out": ("این مخاطب در #{id} ادغام شد", "this contact merged into #{id}"),
    "merge_line": ("  {when}  {what} توسط ", "  {when}  {what} by "),
    "undone": ("  (لغو شده {when})", "  (undone {when})"),
    "highlight_duplicate": ("برای ادغام در این مخاطب، یک پیشنهاد تکراری را انتخاب کنید",
                            "highlight a duplicate suggestion to merge it into this contact"),
    "merged": ("مخاطب #{other} در #{contact} ادغام شد (ادغام {merge})",
               "contact #{other} merged into #{contact} (merge {merge})"),
    "no_merge_to_undo": ("ادغامی برای لغو نیست", "no merge to undo"),
    "undo_question": ("ادغام {merge} لغو شود؟", "Undo merge {merge}?"),
    "undo_explained": (("مخاطب #{merged} دوباره از #{kept} جدا می‌شود و شناسه‌ها، پرونده‌ها و یادداشت‌هایی را که"
                        " ادغام منتقل کرد پس می‌گیرد (آنچه پس از آن رسیده می‌ماند)."),
                       ("Contact #{merged} is split off #{kept} again, and takes back the identities, claims and"
                        " notes the merge moved (what arrived since stays).")),
    "undone_notice": ("ادغام {merge} لغو شد: مخاطب #{contact} بازگردانده شد",
                      "merge {merge} undone: contact #{contact} restored"),
    "highlight_identity": ("برای جداسازی، یک شناسه را انتخاب کنید", "highlight an identity to split it off"),
    "split_question": ("{identity} جدا شود", "Split {identity} off"),
    "split_explained": ("و مخاطبی از آن خود شود؟ پرونده‌هایی که فقط او در آن‌ها نوشته با او می‌روند.",
                        "into a contact of its own? The claims only it wrote on go with it."),
    "split_done": ("به مخاطب #{contact} جدا شد", "split off into contact #{contact}"),
    # -- search, supervisor, reports ------------------------------------------------------------
    "search_placeholder": ("شماره پرونده، تلفن، ایمیل، کد ملی، پلاک یا واژه‌ها",
                           "claim ref, phone, e-mail, national id, plate or words"),
    "nothing_found": ("چیزی پیدا نشد", "nothing found"),
    "section.agents": ("کارشناسان", "Agents"),
    "section.queues": ("صف‌ها", "Queues"),
    "section.at_risk": ("در خطر و نقض‌شده", "At risk and breached"),
    "reports": ("گزارش‌ها", "Reports"),
    "reports_title": ("گزارش‌ها {first} – {last} · بر اساس {by}", "Reports {first} – {last} · by {by}"),
    "hours_note": ("پاسخ و حل: میانه‌ها؛ ساعت کاری = ساعت‌های کار در تقویم SLA پرونده",
                   "Response and resolution: medians; business h = working hours on the claim's SLA calendar"),
    "opened_per_day": ("پرونده‌های باز شده در روز", "Tickets opened per day"),
    "channel_mix": ("سهم کانال‌ها", "Channel mix"),
    "hours": ("{value} ساعت", "{value} h"),
    "fig.opened": ("باز شده", "Opened"),
    "fig.closed": ("بسته شده", "Closed"),
    "fig.backlog": ("مانده", "Backlog"),
    "fig.first_clock": ("اولین پاسخ، ساعت", "First resp. clock h"),
    "fig.first_business": ("اولین پاسخ، ساعت کاری", "First resp. business h"),
    "fig.resolution_clock": ("حل، ساعت", "Resol. clock h"),
    "fig.resolution_business": ("حل، ساعت کاری", "Resol. business h"),
    "fig.sla": ("SLA ٪", "SLA %"),
    "fig.breaches": ("نقض‌ها", "Breaches"),
    "fig.reopen": ("بازگشایی ٪", "Reopen %"),
    # -- names of the server's values, as agents read them (`term`) -----------------------------
    "status.new": ("جدید", "new"),
    "status.assigned": ("واگذار شده", "assigned"),
    "status.awaiting_documents": ("در انتظار مدارک", "awaiting_documents"),
    "status.awaiting_insurer": ("در انتظار بیمه‌گر", "awaiting_insurer"),
    "status.inspection_scheduled": ("بازدید تعیین شده", "inspection_scheduled"),
    "status.assessed": ("ارزیابی شده", "assessed"),
    "status.awaiting_settlement": ("در انتظار تسویه", "awaiting_settlement"),
    "status.closed": ("بسته", "closed"),
    "status.reopened": ("بازگشایی شده", "reopened"),
    "priority.low": ("کم", "low"),
    "priority.normal": ("عادی", "normal"),
    "priority.high": ("زیاد", "high"),
    "priority.urgent": ("فوری", "urgent"),
    "availability.available": ("در دسترس", "available"),
    "availability.away": ("غایب", "away"),
    "availability.offline": ("آفلاین", "offline"),
    "role.agent": ("کارشناس", "agent"),
    "role.supervisor": ("سرپرست", "supervisor"),
    "role.admin": ("مدیر", "admin"),
    "state.connecting": ("در حال اتصال", "connecting"),
    "state.connected": ("متصل", "connected"),
    "state.reconnecting": ("در حال اتصال دوباره", "reconnecting"),
    "state.refused": ("رد شد", "refused"),
    "channel.email": ("ایمیل", "email"),
    "channel.sms": ("پیامک", "sms"),
    "channel.whatsapp": ("واتس‌اپ", "whatsapp"),
    "channel.call": ("تماس", "call"),
    "channel.telegram": ("تلگرام", "telegram"),
    "channel.bale": ("بله", "bale"),
    "channel.webchat": ("گفتگوی وب", "webchat"),
    "channel.webform": ("فرم وب", "webform"),
    "channel.internal": ("داخلی", "internal"),
    "kind.email": ("ایمیل", "email"),
    "kind.phone": ("تلفن", "phone"),
    "kind.telegram": ("تلگرام", "telegram"),
    "kind.bale": ("بله", "bale"),
    "kind.national_id": ("کد ملی", "national_id"),
    "alert.sla_warning": ("هشدار SLA", "SLA warning"),
    "alert.sla_breached": ("نقض SLA", "SLA breached"),
    "alert.supervisor_alert": ("ارجاع به سرپرست", "escalated to supervisor"),
    # -- the fields of a timeline event shown in the thread (`thread_view.event_details`) -----
    "field.old": ("از", "from"),
    "field.new": ("به", "to"),
    "field.clock": ("زمان‌سنج", "clock"),
    "field.policy": ("سیاست", "policy"),
    "field.due_at": ("موعد", "due"),
    "field.due": ("موعد", "due"),
    "field.target": ("ادغام در", "into"),
    "field.source": ("از پرونده", "from claim"),
    "field.messages": ("پیام‌ها", "messages"),
    "field.old_status": ("وضعیت پیشین", "status before"),
    "field.merged_into": ("ادغام در", "merged into"),
    "field.channel": ("کانال", "channel"),
    "field.attempt": ("تلاش", "attempt"),
    "field.detail": ("جزئیات", "detail"),
    "field.channel_message_id": ("شناسه پیام", "message id"),
    "field.part_ids": ("شناسه بخش‌ها", "part ids"),
    "field.status": ("وضعیت", "status"),
    "field.escalated": ("ارجاع شد", "escalated"),
    "field.subject": ("موضوع", "subject"),
    "field.text": ("متن", "text"),
    "field.paused": ("متوقف", "paused"),
    "list_separator": ("، ", ", "),
    "yes": ("بله", "yes"),
    "no": ("خیر", "no"),
    # A sent message's delivery, as channels report it (ingest/apply.py `_DELIVERY_STAGES`).
    "delivery.accepted": ("پذیرفته شد", "accepted"),
    "delivery.scheduled": ("زمان‌بندی شد", "scheduled"),
    "delivery.queued": ("در صف", "queued"),
    "delivery.sending": ("در حال ارسال", "sending"),
    "delivery.sent": ("ارسال شد", "sent"),
    "delivery.delivered": ("تحویل شد", "delivered"),
    "delivery.undelivered": ("تحویل نشد", "undelivered"),
    "delivery.failed": ("ناموفق", "failed"),
    "delivery.canceled": ("لغو شد", "canceled"),
    "delivery.read": ("خوانده شد", "read"),
    "clock.first_response": ("اولین پاسخ", "first_response"),
    "clock.next_response": ("پاسخ بعدی", "next_response"),
    "clock.resolution": ("حل", "resolution"),
    "event.status_changed": ("تغییر وضعیت", "status changed"),
    "event.assigned": ("واگذاری", "assigned"),
    "event.unassigned": ("لغو واگذاری", "unassigned"),
    "event.priority_changed": ("تغییر اولویت", "priority changed"),
    "event.queue_changed": ("تغییر صف", "queue changed"),
    "event.merged_into": ("ادغام در", "merged into"),
    "event.merged_from": ("ادغام از", "merged from"),
    "event.delivery_sent": ("ارسال شد", "delivery sent"),
    "event.delivery_failed": ("ارسال ناموفق", "delivery failed"),
    "event.delivery_retrying": ("تلاش دوباره ارسال", "delivery retrying"),
    "event.delivery_status": ("وضعیت تحویل", "delivery status"),
    "event.sla_warning": ("هشدار SLA", "sla warning"),
    "event.sla_breached": ("نقض SLA", "sla breached"),
    "event.supervisor_alert": ("هشدار سرپرست", "supervisor alert"),
    "op.take": ("برداشتن", "take"),
    "op.assign": ("واگذاری", "assign"),
    "op.unassign": ("لغو واگذاری", "unassign"),
    "op.set_status": ("وضعیت", "set status"),
    "op.set_priority": ("اولویت", "set priority"),
    "op.set_queue": ("انتقال", "set queue"),
    "op.reply": ("پاسخ", "reply"),
    "op.note": ("یادداشت", "note"),
    "dimension.total": ("کل", "total"),
    "dimension.insurer": ("بیمه‌گر", "insurer"),
    "dimension.queue": ("صف", "queue"),
    "dimension.agent": ("کارشناس", "agent"),
    "dimension.channel": ("کانال", "channel"),
    "dimension.line_of_business": ("رشته بیمه", "line_of_business"),
    # The report's own names for a group with no insurer, assignee or closing agent (ingest/reports.py).
    "report_group.(none)": ("(بدون بیمه‌گر)", "(none)"),
    "report_group.(unassigned)": ("(بی‌مسئول)", "(unassigned)"),
    "report_group.(automatic)": ("(خودکار)", "(automatic)"),
    # -- refusals of the agent API, by their `reason`; `{params}` as the server names them -----
    "error.no_ticket": ("پرونده {ref} وجود ندارد", "no ticket {ref}"),
    "error.illegal_transition": ("{ref}: پرونده را نمی‌توان از «{old}» به «{new}» برد؛ مجاز: {allowed}",
                                 "{ref}: cannot move the ticket from {old} to {new}; allowed: {allowed}"),
    "error.reply_empty": ("پاسخ خالی است", "the reply is empty"),
    "error.note_empty": ("یادداشت متنی ندارد", "a note needs some text"),
    "error.empty_text": ("متن خالی است", "the text is empty"),
    "error.wrong_reply_channel": ("به {ref} نمی‌توان در {channel} پاسخ داد، فقط در {channels}",
                                  "{ref} cannot be answered on {channel}, only on {channels}"),
    "error.merged_ticket": ("{ref} در {into} ادغام شده است؛ روی آن کار کنید",
                            "{ref} was merged into {into}; work on that one"),
    "error.closed_ticket": ("{ref} بسته است؛ برای انتقال، آن را بازگشایی کنید",
                            "{ref} is closed; reopen it to move it"),
    "error.merge_into_itself": ("پرونده را نمی‌توان در خودش ادغام کرد", "cannot merge a ticket into itself"),
    "error.already_merged": ("{ref} پیش‌تر در {into} ادغام شده است", "{ref} was already merged into {into}"),
    "error.insurer_claim_merge": ("{ref} پرونده بیمه‌گر {insurer} است و فقط در پرونده دیگری از {insurer} ادغام می‌شود",
                                  ("{ref} is insurer {insurer}'s claim; it can only be merged into another of"
                                   " {insurer}'s claims")),
    "error.assigned_to_colleague": ("{ref} به {agent} واگذار شده است؛ واگذاری دوباره با سرپرست است",
                                    "{ref} is assigned to {agent}; ask a supervisor to reassign it"),
    "error.not_your_queue": ("{ref} در صف {queue} است که شما عضو آن نیستید",
                             "{ref} is in queue {queue}, which you are not a member of"),
    "error.needs_supervisor": ("این کار نقش سرپرست یا مدیر می‌خواهد", "this needs the supervisor or admin role"),
    "error.unknown_agent": ("کارشناس فعالی به نام {agent} نیست", "no active agent {agent}"),
    "error.agent_not_in_queue": ("{agent} عضو صف {queue} نیست", "{agent} is not a member of queue {queue}"),
    "error.sender_not_a_contact": ("فرستنده این پیام شناسه هیچ مخاطبی نیست: چیزی برای پیوند نیست",
                                   "the sender of this message is no contact's identity: nothing to link"),
    "error.no_contact": ("مخاطب {contact} وجود ندارد", "no contact {contact}"),
    "error.contact_merged": ("مخاطب {contact} در {into} ادغام شده است", "contact {contact} was merged into {into}"),
    "error.contact_merge_into_itself": ("مخاطب را نمی‌توان در خودش ادغام کرد", "cannot merge a contact into itself"),
    "error.merge_already_undone": ("ادغام {merge} پیش‌تر لغو شده است", "merge {merge} was already undone"),
    "error.only_identity": ("شناسه {identity} تنها شناسه مخاطب است؛ چیزی برای جدا کردن نیست",
                            "identity {identity} is the contact's only one; nothing to split it from"),
    # Why no reply can go (`reply_routes.no_route_reason`): what the contact wrote, then what they
    # can be written to; a label per pair, filled as any other refusal is.
    "error.no_reply.unanswered.no_writer": (
        ("هیچ درگاهی به پیام‌های {channels} مخاطب پاسخ نمی‌دهد"
         " و هیچ درگاهی به {kinds} او نمی‌نویسد"),
        ("no connector answers the contact's {channels} messages"
         ", and no connector writes to their {kinds}")),
    "error.no_reply.unanswered.no_address": (
        ("هیچ درگاهی به پیام‌های {channels} مخاطب پاسخ نمی‌دهد"
         " و ایمیل یا تلفنی برای نوشتن به او نیست: یکی به مخاطب بیفزایید"),
        ("no connector answers the contact's {channels} messages"
         ", and they have no email or phone to write to: add one to the contact")),
    "error.no_reply.no_sender.no_writer": (
        ("پیام {channel} مشتری نشانی فرستنده‌ای برای پاسخ ندارد"
         " و هیچ درگاهی به {kinds} او نمی‌نویسد"),
        ("the customer's {channel} message has no sender address to answer"
         ", and no connector writes to their {kinds}")),
    "error.no_reply.no_sender.no_address": (
        ("پیام {channel} مشتری نشانی فرستنده‌ای برای پاسخ ندارد"
         " و ایمیل یا تلفنی برای نوشتن به او نیست: یکی به مخاطب بیفزایید"),
        ("the customer's {channel} message has no sender address to answer"
         ", and they have no email or phone to write to: add one to the contact")),
    "error.no_reply.not_written.no_writer": (
        ("مخاطب پرونده در آن چیزی ننوشته است"
         " و هیچ درگاهی به {kinds} او نمی‌نویسد"),
        ("the claim's contact has not written on it"
         ", and no connector writes to their {kinds}")),
    "error.no_reply.not_written.no_address": (
        ("مخاطب پرونده در آن چیزی ننوشته است"
         " و ایمیل یا تلفنی برای نوشتن به او نیست: یکی به مخاطب بیفزایید"),
        ("the claim's contact has not written on it"
         ", and they have no email or phone to write to: add one to the contact")),
}

# The term group naming a refusal's parameter (statuses, channels): any other (a reference, a
# name, an id) is shown as sent.
PARAM_TERMS = {"old": "status", "new": "status", "allowed": "status", "channel": "channel", "channels": "channel",
               "kinds": "kind"}


# Textual's own command-palette entries (`App.get_system_commands`), by the words Textual gives
# them: an entry a later Textual adds, or rewords, is shown as Textual words it.
SYSTEM_COMMANDS: dict[str, tuple[str, str]] = {
    "Theme": ("پوسته", "Theme"),
    "Change the current theme": ("تغییر پوسته رنگی کنسول", "Change the current theme"),
    "Quit": ("خروج", "Quit"),
    "Quit the application as soon as possible": ("خروج از کنسول", "Quit the application as soon as possible"),
    "Keys": ("کلیدها", "Keys"),
    "Show help for the focused widget and a summary of available keys": (
        "راهنمای بخش انتخاب‌شده و فهرست کلیدها", "Show help for the focused widget and a summary of available keys"),
    "Hide the keys and widget help panel": ("بستن فهرست کلیدها", "Hide the keys and widget help panel"),
    "Maximize": ("بزرگ‌کردن", "Maximize"),
    "Maximize the focused widget": ("بزرگ‌کردن بخش انتخاب‌شده", "Maximize the focused widget"),
    "Minimize": ("اندازه عادی", "Minimize"),
    "Minimize the widget and restore to normal size": (
        "بازگرداندن بخش به اندازه عادی", "Minimize the widget and restore to normal size"),
    "Screenshot": ("تصویر صفحه", "Screenshot"),
    "Save an SVG 'screenshot' of the current screen": (
        "ذخیره تصویر SVG از صفحه کنونی", "Save an SVG 'screenshot' of the current screen"),
}


def system_command(words: str, prefs: Prefs) -> str:
    """Textual's words for one of its palette entries in the agent's language, in logical order
    (as given when there is no translation)."""
    pair = SYSTEM_COMMANDS.get(words)
    return words if pair is None else _pick(pair, prefs)


def _pick(pair: tuple[str, str], prefs: Prefs) -> str:
    return pair[0] if prefs.language == "fa" else pair[1]


def say(key: str, prefs: Prefs, **values: Any) -> str:
    """The label `key` in the agent's language, in logical order, its placeholders filled; a
    number takes the agent's digits."""
    filled = {name: number(v, prefs) if isinstance(v, int | float) and not isinstance(v, bool) else v
              for name, v in values.items()}
    return _pick(LABELS[key], prefs).format(**filled)


def term(group: str, value: str, prefs: Prefs) -> str:
    """A value the server sends (a status, a channel, a role...) as agents read it; one with no
    name here (a plugin's channel, a status added later) as sent."""
    pair = LABELS.get(f"{group}.{value}")
    return value if pair is None else _pick(pair, prefs)


def refusal(reason: str | None, params: dict[str, Any], words: str, prefs: Prefs) -> str:
    """A refusal of the agent API in the agent's language, in logical order: its `error.<reason>`
    label filled from `params`, statuses and channels named as agents read them, lists joined.
    The server's `words` for a reason with no label here (one a newer daemon added)."""
    key = f"error.{reason}"
    if key not in LABELS:
        return words
    filled: dict[str, Any] = {}
    for name, value in params.items():
        group = PARAM_TERMS.get(name)
        if isinstance(value, list):
            value = say("list_separator", prefs).join(term(group, str(v), prefs) if group else str(v) for v in value)
        elif group:
            value = term(group, str(value), prefs)
        filled[name] = value
    try:
        return say(key, prefs, **filled)
    except KeyError:  # a parameter the daemon no longer sends
        return words


def visual(text: str, prefs: Prefs) -> str:
    """Console text in the order a terminal without bidi prints it, line by line. Spaces at
    either end are layout (a gap before the next field), not text: they stay where they are,
    where reordering would move a Persian label's leading gap to its far end."""
    rows = []
    for line in text.split("\n"):
        words = line.strip(" ")
        if not words:
            rows.append(line)
            continue
        start = line.index(words)
        rows.append(line[:start] + display_lines(words, prefs)[0] + line[start + len(words):])
    return "\n".join(rows)


def shown(key: str, prefs: Prefs, **values: Any) -> str:
    """`say` in display order: for widgets that take a plain string."""
    return visual(say(key, prefs, **values), prefs)


def shown_term(group: str, value: str, prefs: Prefs) -> str:
    """`term` in display order."""
    return visual(term(group, value, prefs), prefs)
