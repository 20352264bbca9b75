"""MIME parsing benchmark: µs per mail through `ingest.mime.parse_email`.

    python bench/mime.py              # 1,000 generated mails (bench/ingest.py's mix) + the corpus
    python bench/mime.py --n 5000 --repeat 5

Prints the best-of-`repeat` mean µs/mail for the generated set, for its small text-only mails,
for the spamscope corpus (when present), and for one large mail per size to show cost stays
linear in size.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import make_mails  # noqa: E402
from ingest.mime import MalformedMessage, parse_email  # noqa: E402

CORPUS = Path("/work/shared/corpus/mail-spamscope")


def _per_mail_us(mails: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for raw in mails:
            try:
                parse_email(raw)
            except MalformedMessage:
                pass
        best = min(best, time.perf_counter() - start)
    return best / len(mails) * 1e6


def _big_mail(text_bytes: int, attachment_bytes: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ali <ali@example.com>"
    msg["To"] = "claims@parvandeh.test"
    msg["Subject"] = "بزرگ"
    msg.set_content(("خسارت تصادف بدنه " * (text_bytes // 30 + 1))[: text_bytes // 2])
    if attachment_bytes:
        msg.add_attachment(random.Random(1).randbytes(attachment_bytes), maintype="application",
                           subtype="pdf", filename="scan.pdf")
    return msg.as_bytes(policy=SMTP_POLICY)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    mails = make_mails(args.n)
    small = [m for m in mails if b"multipart" not in m[:2000] and len(m) < 4000]
    print(f"generated ({len(mails)} mails):      {_per_mail_us(mails, args.repeat):8.1f} µs/mail")
    print(f"  small text-only ({len(small)}):      {_per_mail_us(small, args.repeat):8.1f} µs/mail")
    if CORPUS.is_dir():
        corpus = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
        print(f"corpus ({len(corpus)} mails):           {_per_mail_us(corpus, args.repeat):8.1f} µs/mail")
    for text, attachment in ((100_000, 0), (1_000_000, 0), (0, 1_000_000), (0, 10_000_000)):
        raw = _big_mail(text, attachment)
        us = _per_mail_us([raw], args.repeat)
        print(f"big {len(raw) / 1e6:6.2f} MB (text {text:>9,}, att {attachment:>10,}): "
              f"{us / 1000:8.2f} ms  ({us / len(raw) * 1000:6.1f} ns/byte)")


if __name__ == "__main__":
    main()
