"""Standalone fake Keycloak: ``python -m makrx_contracts.harness.issuer serve --port 8081`` (and ``cases`` to list the catalogue)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from makrx_contracts.harness.errors import HarnessError

from .server import Issuer
from .users import User

_EPILOG = """\
examples:
  python -m makrx_contracts.harness.issuer serve --port 8081
  python -m makrx_contracts.harness.issuer serve --client-id makrx-frontend --client-secret s3cret --audience makrcave-api
  python -m makrx_contracts.harness.issuer serve --user alice:wonderland:admin,user
  curl -s -d grant_type=password -d client_id=makrx-frontend -d username=alice -d password=wonderland \\
       http://127.0.0.1:8081/realms/makrx/protocol/openid-connect/token
  curl -s -X POST http://127.0.0.1:8081/admin/keys/promote      # rotate: new active key
  curl -s -X POST -d '{"kind":"jwks","status":500}' http://127.0.0.1:8081/admin/faults
"""


def _user(spec: str) -> tuple[str, str, tuple[str, ...]]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"{spec!r} is not USER:PASSWORD[:ROLE,ROLE]")
    roles = tuple(r for r in parts[2].split(",") if r) if len(parts) == 3 else ("user",)
    return parts[0], parts[1], roles


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m makrx_contracts.harness.issuer",
        description="A fake Keycloak realm (discovery, JWKS, token endpoint, userinfo) for MakrX backends "
        "and frontends.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the issuer until Ctrl-C",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a fake Keycloak realm over HTTP until Ctrl-C (or SIGTERM). Prints the issuer URL, "
        "login users and a sample access token. Admin endpoints under /admin rotate keys and switch faults.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    serve.add_argument("--port", type=int, default=8081, help="port to bind, 0 for a free one (default: %(default)s)")
    serve.add_argument("--realm", default="makrx", help="realm name (default: %(default)s)")
    serve.add_argument("--seed", type=int, default=0, help="seed for keys and faker users (default: %(default)s)")
    serve.add_argument(
        "--algorithm", choices=["RS256", "ES256"], default="RS256", help="signing algorithm (default: %(default)s)"
    )
    serve.add_argument(
        "--client-id",
        action="append",
        default=[],
        metavar="ID",
        help="a client allowed at the token endpoint (repeatable); without any, every client id is accepted",
    )
    serve.add_argument(
        "--client-secret",
        action="append",
        default=[],
        metavar="SECRET",
        help="secret of the --client-id at the same position; a client without one is public",
    )
    serve.add_argument(
        "--audience",
        default="makrx-api",
        help="aud of issued access tokens, i.e. the backend's KEYCLOAK_CLIENT_ID (default: %(default)s)",
    )
    serve.add_argument(
        "--user",
        action="append",
        default=[],
        type=_user,
        metavar="USER:PASSWORD[:ROLES]",
        help="a login for the password grant, roles comma-separated (repeatable)",
    )
    serve.add_argument(
        "--token-lifetime",
        type=int,
        default=300,
        metavar="SECONDS",
        help="access token lifetime (default: %(default)s)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="base URL to advertise instead of http://HOST:PORT (e.g. behind a proxy)",
    )
    serve.add_argument("--no-enc-key", action="store_true", help="publish only signing keys (no RSA-OAEP enc key)")
    serve.add_argument("--quiet", action="store_true", help="print only the issuer URL")
    commands.add_parser(
        "cases", help="list the bad-token catalogue", description="List every bad-token case with its expected verdict."
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    if len(args.client_secret) > len(args.client_id):
        print("error: more --client-secret than --client-id values", file=sys.stderr)
        return 2
    clients = None
    if args.client_id:
        secrets = args.client_secret + [None] * (len(args.client_id) - len(args.client_secret))
        clients = dict(zip(args.client_id, secrets, strict=True))
    issuer = Issuer(
        args.realm,
        args.seed,
        args.algorithm,
        default_audience=args.audience,
        clients=clients,
        enc_key=not args.no_enc_key,
        token_lifetime=args.token_lifetime,
        public_base_url=args.public_url,
    )
    logins: list[User] = [issuer.users.add_login(name, password, roles=roles) for name, password, roles in args.user]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        issuer.start(args.host, args.port)
    except HarnessError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        if args.quiet:
            print(issuer.issuer_url, flush=True)
        else:
            _banner(issuer, logins, clients)
        while not stop.wait(0.5):
            pass
    finally:
        issuer.stop()
    if not args.quiet:
        print("makrx issuer stopped", flush=True)
    return 0


def _banner(issuer: Issuer, logins: Sequence[User], clients: dict[str, str | None] | None) -> None:
    users = list(logins) + [issuer.user(i) for i in range(3)]
    client_text = (
        "any client id and secret"
        if clients is None
        else ", ".join(f"{cid} ({'secret ' + s if s else 'public'})" for cid, s in clients.items())
    )
    lines = [
        f"makrx fake Keycloak: realm {issuer.realm!r}, {issuer.algorithm}, seed {issuer.seed}",
        f"  KEYCLOAK_URL     {issuer.base_url}",
        f"  issuer           {issuer.issuer_url}",
        f"  discovery        {issuer.discovery_url}",
        f"  JWKS             {issuer.jwks_url}",
        f"  token endpoint   {issuer.token_url}",
        f"  userinfo         {issuer.userinfo_url}",
        f"  admin            {issuer.admin_url}  (GET for state and endpoints)",
        f"  clients          {client_text}",
        "  users (password grant):",
        *[f"    {u.preferred_username:<28} password {u.password:<16} roles {','.join(u.roles)}" for u in users],
        f"sample access token (aud {issuer.default_audience!r}, roles user):",
        issuer.mint(),
        "Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def _cases() -> int:
    from .catalogue import CATALOGUE

    width = max(len(c.name) for c in CATALOGUE)
    for case in CATALOGUE:
        print(f"{case.name:<{width}}  {case.verdict.name:<16} {case.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    try:
        return _cases()
    except BrokenPipeError:  # `... cases | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
