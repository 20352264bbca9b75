"""Agent accounts, their tokens and the audit trail.

A token is shown once, when it is made; the store keeps only its SHA-256, so a copy of the
database does not let anyone log in. Roles: `agent` works the queues it is a member of;
`supervisor` sees every queue and the supervisor view; `admin` also manages agents.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from config.policies import load_policies
from ingest.store import Store, Tx

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")
TOKEN_PREFIX = "pvd_"


class AgentError(ValueError):
    """An agent operation asked for something impossible (duplicate name, unknown role...)."""


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    role: Role
    queues: frozenset[str]

    @property
    def sees_all_queues(self) -> bool:
        return self.role in ("supervisor", "admin")

    def may_see(self, queue: str) -> bool:
        return self.sees_all_queues or queue in self.queues

    def visible_queues(self) -> frozenset[str] | None:
        """The queues to filter on, or None for all of them."""
        return None if self.sees_all_queues else self.queues

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "queues": sorted(self.queues)}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_queues(text: str) -> frozenset[str]:
    return frozenset(q.strip() for q in text.split(",") if q.strip())


# -- write operations ---------------------------------------------------------------------------


def create_agent(name: str, role: str, queues: frozenset[str], token: str) -> Callable[[Tx], int]:
    """A new agent with its first token (pass `new_token()`; only its hash is kept)."""
    if role not in ROLES:
        raise AgentError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if not name.strip():
        raise AgentError("agent name: expected a non-empty name")

    def op(tx: Tx) -> int:
        if tx.one("SELECT 1 FROM agents WHERE name = ?", (name,)):
            raise AgentError(f"agent {name!r} already exists; issue a new token with `agent token`")
        agent_id = tx.execute(
            "INSERT INTO agents (name, role, queues, created_at) VALUES (?, ?, ?, ?)",
            (name, role, ",".join(sorted(queues)), tx.stamp),
        ).lastrowid
        _insert_token(tx, agent_id, token)
        write_audit(tx, "system", "agent_created", detail={"agent": name, "role": role, "queues": sorted(queues)})
        return agent_id

    return op


def issue_token(name: str, token: str) -> Callable[[Tx], None]:
    def op(tx: Tx) -> None:
        row = tx.one("SELECT id FROM agents WHERE name = ? AND active = 1", (name,))
        if row is None:
            raise AgentError(f"no active agent {name!r}")
        _insert_token(tx, row["id"], token)
        write_audit(tx, "system", "token_issued", detail={"agent": name})

    return op


def revoke_agent(name: str) -> Callable[[Tx], int]:
    """Revoke every token of the agent; returns how many were live."""

    def op(tx: Tx) -> int:
        row = tx.one("SELECT id FROM agents WHERE name = ?", (name,))
        if row is None:
            raise AgentError(f"no agent {name!r}")
        revoked = tx.execute(
            "UPDATE agent_tokens SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL", (tx.stamp, row["id"])
        ).rowcount
        write_audit(tx, "system", "tokens_revoked", detail={"agent": name, "count": revoked})
        return revoked

    return op


def _insert_token(tx: Tx, agent_id: int, token: str) -> None:
    tx.execute("INSERT INTO agent_tokens (agent_id, token_sha256, created_at) VALUES (?, ?, ?)",
               (agent_id, hash_token(token), tx.stamp))


def write_audit(tx: Tx, agent: str, action: str, ticket_ref: str = "", *, allowed: bool = True,
                detail: dict[str, Any] | None = None) -> None:
    tx.execute(
        "INSERT INTO audit_log (at, agent, action, ticket_ref, allowed, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (tx.stamp, agent, action, ticket_ref, int(allowed), json.dumps(detail or {}, ensure_ascii=False, default=str)),
    )


def audit(agent: str, action: str, ticket_ref: str = "", *, allowed: bool = True,
          detail: dict[str, Any] | None = None) -> Callable[[Tx], None]:
    def op(tx: Tx) -> None:
        write_audit(tx, agent, action, ticket_ref, allowed=allowed, detail=detail)

    return op


# -- reads --------------------------------------------------------------------------------------


async def agent_for_token(store: Store, token: str) -> Agent | None:
    row = await store.fetchone(
        "SELECT a.name, a.role, a.queues FROM agent_tokens k JOIN agents a ON a.id = k.agent_id"
        " WHERE k.token_sha256 = ? AND k.revoked_at IS NULL AND a.active = 1",
        (hash_token(token),),
    )
    return Agent(row["name"], row["role"], parse_queues(row["queues"])) if row else None


async def list_agents(store: Store) -> list[dict[str, Any]]:
    rows = await store.fetchall(
        "SELECT a.name, a.role, a.queues, a.active, a.created_at,"
        " (SELECT count(*) FROM agent_tokens k WHERE k.agent_id = a.id AND k.revoked_at IS NULL) AS live_tokens"
        " FROM agents a ORDER BY a.name"
    )
    return [{**dict(row), "queues": sorted(parse_queues(row["queues"]))} for row in rows]


async def audit_trail(store: Store, *, agent: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    sql = "SELECT id, at, agent, action, ticket_ref, allowed, detail FROM audit_log"
    params: tuple = ()
    if agent:
        sql += " WHERE agent = ?"
        params = (agent,)
    rows = await store.fetchall(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
    return [{**dict(row), "allowed": bool(row["allowed"]), "detail": json.loads(row["detail"])} for row in rows]


# -- CLI ----------------------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser, common: list[argparse.ArgumentParser]) -> None:
    """`agent add|token|revoke|list` arguments, for run.py's `agent` sub-command."""
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", parents=common, help="create an agent and print its token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="agent")
    add.add_argument("--queues", default="", help="comma-separated queue names")
    token = sub.add_parser("token", parents=common, help="issue another token for an agent (shown once)")
    token.add_argument("name")
    revoke = sub.add_parser("revoke", parents=common, help="revoke every token of an agent")
    revoke.add_argument("name")
    sub.add_parser("list", parents=common, help="agents, roles, queues")


def cli_agent(settings: Any, args: argparse.Namespace) -> int:
    """Run `agent ACTION`; prints a new token exactly once. Returns the exit status."""

    async def work() -> int:
        store = Store(settings.store.path, synchronous=settings.store.synchronous)
        await store.open()
        try:
            if args.action == "list":
                for a in await list_agents(store):
                    state = "active" if a["active"] else "inactive"
                    print(f"{a['name']:<20} {a['role']:<10} {','.join(a['queues']) or '-':<30}"
                          f" {state}, {a['live_tokens']} live token(s)")
                return 0
            if args.action == "revoke":
                count = await store.write(revoke_agent(args.name))
                print(f"revoked {count} token(s) of {args.name}")
                return 0
            token = new_token()
            if args.action == "add":
                queues, configured = parse_queues(args.queues), set(load_policies(settings).queues)
                unknown = sorted(queues - configured)
                if unknown:
                    # a typo would give an agent who silently sees nothing
                    print(f"--queues: unknown queue {', '.join(unknown)}; configured queues: "
                          f"{', '.join(sorted(configured))}", file=sys.stderr)
                    return 2
                await store.write(create_agent(args.name, args.role, queues, token))
            else:
                await store.write(issue_token(args.name, token))
            print(token)
            return 0
        except AgentError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(work())

