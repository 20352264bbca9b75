"""Local stand-ins for the outside world, on loopback only: the Telegram Bot API
(`bot_api`), Twilio's Messages API and its webhooks (`twilio_api`), an SMTP relay that keeps what
it receives (`smtp_sink`), and the customers who write on every channel (`customers`).

`python run.py demo` runs the daemon against them so nothing ever leaves the machine; the tests
use them as the channels' far ends."""
