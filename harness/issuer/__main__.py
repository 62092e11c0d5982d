"""Standalone fake Keycloak: ``python -m makrx_contracts.harness.issuer serve --port 8081``; ``token`` and ``replay``
for auth edge cases against a backend that trusts it; ``cases`` lists the catalogue."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from makrx_contracts.harness.errors import HarnessError
from makrx_contracts.harness.issuer.backend_env import JWKS_TTL_SECONDS

from .remote import DEFAULT_ISSUER
from .replay import list_cases, print_token, replay
from .rotation import rotate
from .server import Issuer
from .users import User

_EPILOG = """\
examples:
  python -m makrx_contracts.harness.issuer serve --port 8081
  python -m makrx_contracts.harness.issuer serve --client-id makrx-frontend --client-secret s3cret \\
      --audience makrcave-api
  python -m makrx_contracts.harness.issuer serve --user alice:wonderland:admin,user
  curl -s -d grant_type=password -d client_id=makrx-frontend -d username=alice -d password=wonderland \\
       http://127.0.0.1:8081/realms/makrx/protocol/openid-connect/token
  curl -s -X POST http://127.0.0.1:8081/admin/keys/promote      # rotate: new active key
  curl -s -X POST -d '{"kind":"jwks","status":500}' http://127.0.0.1:8081/admin/faults
"""

_TOKEN_EPILOG = """\
examples:
  python -m makrx_contracts.harness.issuer token --list
  python -m makrx_contracts.harness.issuer token --case alg_none_trailing_dot --audience makrx-reference-api
  curl -i -H "Authorization: Bearer $(python -m makrx_contracts.harness.issuer token --case expired)" \\
       http://127.0.0.1:8000/api/v1/me
"""

_REPLAY_EPILOG = f"""\
The backend must trust the issuer, e.g. the reference app:
  KEYCLOAK_URL=http://127.0.0.1:8081 KEYCLOAK_REALM=makrx KEYCLOAK_CLIENT_ID=makrx-api \\
  KEYCLOAK_PK_TTL_SECONDS={JWKS_TTL_SECONDS} python -m uvicorn makrx_contracts.reference_app.main:app --port 8000

examples:
  python -m makrx_contracts.harness.issuer replay http://127.0.0.1:8000/api/v1/me
  python -m makrx_contracts.harness.issuer replay http://127.0.0.1:8000/api/v1/me --case alg_none_trailing_dot expired
  python -m makrx_contracts.harness.issuer replay http://127.0.0.1:8000/api/v1/me --rotate

exit status: 0 every MUST check as expected (--strict: every check), 1 otherwise, 2 nothing judged (the issuer or
the backend does not answer, the backend does not trust the issuer, the operation needs no token, a bad name)
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
    serve.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for the faker users (default: %(default)s); the keys are new at every start",
    )
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
    token = commands.add_parser(
        "token",
        help="print a bad-token case's token, signed by a running `serve`",
        epilog=_TOKEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print one catalogue case's token (a valid token without --case), made by the issuer that "
        "`serve` runs, so the backend that trusts it can verify the signature. Only the token goes to stdout; "
        "its level, expected answer and fix go to stderr. --list needs no issuer.",
    )
    which = token.add_mutually_exclusive_group()
    which.add_argument("--case", metavar="NAME", help="the catalogue case (see --list)")
    which.add_argument("--list", action="store_true", help="list the cases with level and expected answer")
    _issuer_options(token)
    replay_cmd = commands.add_parser(
        "replay",
        help="send the bad-token catalogue (or a key rotation) to a backend and judge each answer",
        epilog=_REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send a valid token, then every catalogue case's token (or the --case ones), to one operation "
        "of a running backend that trusts the `serve` issuer; print case, level, expected, got, verdict, and a "
        "curl command for each failure. A bad token answered as the valid one was is accepted.",
    )
    replay_cmd.add_argument("url", metavar="URL", help="the operation's URL, e.g. http://127.0.0.1:8000/api/v1/me")
    replay_cmd.add_argument("--method", default="GET", help="its method (default: %(default)s)")
    what = replay_cmd.add_mutually_exclusive_group()
    what.add_argument(
        "--case", nargs="+", action="extend", default=[], metavar="NAME", help="only these cases (repeatable)"
    )
    what.add_argument(
        "--rotate",
        action="store_true",
        help="instead of the cases: rotate the issuer's keys (publish, promote, retire) and check the backend "
        "follows without a restart; the keys are restored afterwards",
    )
    replay_cmd.add_argument(
        "--ttl",
        type=float,
        default=JWKS_TTL_SECONDS,
        metavar="SECONDS",
        help="with --rotate: the backend's JWKS cache TTL (its KEYCLOAK_PK_TTL_SECONDS), which bounds the waits "
        "(default: %(default)s)",
    )
    replay_cmd.add_argument("--strict", action="store_true", help="exit 1 on SHOULD failures too")
    _issuer_options(replay_cmd)
    return parser


def _issuer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--issuer",
        default=DEFAULT_ISSUER,
        metavar="URL",
        help="the issuer URL `serve` printed, or its base URL (default: %(default)s)",
    )
    parser.add_argument(
        "--audience",
        default=None,
        metavar="AUD",
        help="aud of the tokens: the backend's KEYCLOAK_CLIENT_ID (default: the one `serve --audience` set)",
    )


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


def _token(args: argparse.Namespace) -> int:
    if args.list:
        list_cases(sys.stdout)
    else:
        print_token(args.case, issuer_url=args.issuer, audience=args.audience, out=sys.stdout, err=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    common = {"method": args.method, "issuer_url": args.issuer, "audience": args.audience, "strict": args.strict}
    if args.rotate:
        return rotate(args.url, ttl=args.ttl, out=sys.stdout, **common)
    return replay(args.url, cases=args.case, out=sys.stdout, **common)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    run = {"cases": lambda _: _cases(), "token": _token, "replay": _replay}[args.command]
    try:
        return run(args)
    except HarnessError as exc:
        print(exc, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... cases | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
