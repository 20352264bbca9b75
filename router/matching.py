"""Thread matching: which ticket an inbound message belongs to. Pure decision over facts the
store looked up; the order of the rules is the product's promise (see ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MatchReason(StrEnum):
    CLAIM_REFERENCE = "claim_reference"
    EMAIL_HEADERS = "email_headers"
    CONTINUITY = "continuity"
    NEW_TICKET = "new_ticket"
    UNTHREADED = "unthreaded"  # automatic mail we could not place: kept, never opens a ticket


@dataclass(frozen=True, slots=True)
class MatchFacts:
    """Tickets the store found for each matching rule (None when the rule found nothing)."""

    claim_ticket: int | None
    header_ticket: int | None
    continuity_ticket: int | None
    automatic: bool
    opens_ticket: bool = True


@dataclass(frozen=True, slots=True)
class MatchDecision:
    reason: MatchReason
    ticket_id: int | None = None

    @property
    def creates_ticket(self) -> bool:
        return self.reason is MatchReason.NEW_TICKET


def decide_thread(facts: MatchFacts) -> MatchDecision:
    if facts.claim_ticket is not None:
        return MatchDecision(MatchReason.CLAIM_REFERENCE, facts.claim_ticket)
    if facts.header_ticket is not None:
        return MatchDecision(MatchReason.EMAIL_HEADERS, facts.header_ticket)
    if facts.continuity_ticket is not None:
        return MatchDecision(MatchReason.CONTINUITY, facts.continuity_ticket)
    if facts.automatic or not facts.opens_ticket:
        return MatchDecision(MatchReason.UNTHREADED)
    return MatchDecision(MatchReason.NEW_TICKET)


@dataclass(frozen=True, slots=True)
class AckFacts:
    created_ticket: bool
    enabled: bool
    automatic: bool
    unattended_sender: bool
    own_address: bool
    sent_last_hour: int
    hourly_limit: int
    can_reply: bool


def should_acknowledge(facts: AckFacts) -> bool:
    """Acknowledge a new ticket, but never to machines, ourselves, or faster than the loop
    guard allows."""
    return (
        facts.created_ticket
        and facts.enabled
        and facts.can_reply
        and not facts.automatic
        and not facts.unattended_sender
        and not facts.own_address
        and facts.sent_last_hour < facts.hourly_limit
    )
