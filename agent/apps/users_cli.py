"""`sqlagent users add|list|revoke`: the API's users and their tokens (agent/apps/users.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from agent.apps.users import PERMISSIONS, UserError, UserStore, parse_permissions
from agent.config import load_settings, resolve_path


def _store() -> tuple[UserStore, object]:
    settings = load_settings()
    return UserStore(resolve_path(settings.server.users_file)), settings


def cmd_add(args: argparse.Namespace) -> int:
    from tools.sql.policy import default_role_name, load_roles

    store, settings = _store()
    access = resolve_path(settings.database.access_file)
    role = args.role or default_role_name(access)
    roles = load_roles(access)
    try:
        if role not in roles:
            raise UserError(f"Unknown role {role!r}; roles in {access.name}: {', '.join(sorted(roles))}.")
        user, token = store.add(args.name, role, parse_permissions(args.permissions))
    except (UserError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**user.model_dump(), "token": token}))
    else:
        print(
            f"Created {user.name} (role {user.role}, permissions {','.join(user.permissions)}). Token, shown once:"
        )
        print(token)
        print(
            "Send it as 'Authorization: Bearer <token>', or paste it into the web page's token field.",
            file=sys.stderr,
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store, _ = _store()
    users = store.list()
    if args.json:
        print(json.dumps([u.model_dump() for u in users]))
    elif not users:
        print(f"No users in {store.path}.")
    for u in [] if args.json else users:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(u.created_at))
        print(f"{u.name:<20} role {u.role:<12} {','.join(u.permissions):<22} created {created}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    store, _ = _store()
    try:
        store.revoke(args.name)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Revoked {args.name}: its token is refused from the next request on.")
    return 0


def add_users_parser(sub) -> None:
    users = sub.add_parser("users", help="the HTTP API's users and tokens (server.users_file)")
    actions = users.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="create a user and print its token once")
    add.add_argument("name")
    add.add_argument("--role", help="access role from config/access.yaml (default: its default_role)")
    add.add_argument(
        "--permissions",
        default="ask,feedback",
        help=f"comma-separated, of {', '.join(PERMISSIONS)} (default ask,feedback); "
        "review = the review queue and promotion into the golden set",
    )
    add.add_argument("--json", action="store_true", help="print the user and token as one JSON object")
    add.set_defaults(func=cmd_add)

    ls = actions.add_parser("list", help="list the users (never their tokens)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    revoke = actions.add_parser("revoke", help="delete a user: its token stops working at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_revoke)
