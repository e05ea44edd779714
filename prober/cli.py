"""Command line: argv → a command → an exit code. The only place that prints or exits.

Exit codes (one mapping, in `main`): 0 consistent, 1 an edge diverges or fails,
2 bad usage or input, 3 a name resolved to no address.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from prober import __version__
from prober.errors import ProberError, UsageError

if TYPE_CHECKING:
    from prober.config import Config
    from prober.daemon.shard import Shard
    from prober.daemon.webconfig import WebConfig
    from prober.model import Report

T = TypeVar("T")
EXIT_OK, EXIT_DIVERGENT, EXIT_USAGE, EXIT_UNRESOLVED = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"cdnprobe: {message} (see cdnprobe {self._subcommand()}--help)\n")
        raise SystemExit(EXIT_USAGE)

    def _subcommand(self) -> str:
        words = self.prog.split()[1:]
        return " ".join(words) + " " if words else ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cdnprobe", description="Find the CDN edge that serves different bytes.")
    parser.add_argument("--version", action="version", version=f"cdnprobe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(commands)
    _add_check(commands, "wait")
    _add_daemon_commands(commands)
    return parser


def _add_daemon_commands(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="the exporter daemon: probe configured targets, serve /metrics",
        description="Probe every configured target on its interval and serve Prometheus "
        "metrics (/metrics), /healthz, /probe?target=NAME and a status page (/). "
        "SIGHUP or POST /-/reload re-reads the config; SIGTERM drains and exits 0.",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="YAML config file")
    run.add_argument("--listen", metavar="HOST:PORT", help="overrides the config's listen")
    run.add_argument(
        "--web.config.file",
        dest="web_config",
        metavar="FILE",
        help="TLS and basic auth for the HTTP endpoints, in the Prometheus exporters' format "
        "(tls_server_config, basic_auth_users with bcrypt hashes)",
    )
    run.add_argument(
        "--shard",
        metavar="INDEX/COUNT",
        help="probe only the targets whose name hashes to shard INDEX of COUNT "
        "(sha256 of the name, mod COUNT); e.g. a StatefulSet ordinal",
    )
    validate = commands.add_parser(
        "validate-config",
        help="check a config file without running",
        description="Exit 0 if "
        "FILE is a valid config; otherwise print FILE: field: problem and exit 2.",
    )
    validate.add_argument("file", metavar="FILE", nargs="?")
    validate.add_argument(
        "--config", dest="config_file", metavar="FILE", help="the same, as `run` takes it"
    )
    commands.add_parser(
        "config-schema",
        help="print the config's JSON Schema (for editors)",
        description="Print the JSON Schema of the config file format.",
    )
    demo = commands.add_parser(
        "demo",
        help="a mini CDN on loopback with a stale and a truncating edge, watched by the daemon",
        description="Start four HTTPS edges on 127.0.0.2-5 (a throwaway CA, certificates "
        "chosen by SNI) and a DNS responder inside this process, run the daemon against them "
        "and print the edge table after each cycle; the stale edge catches up after 3 cycles. "
        "Needs no internet and no config. Ctrl-C stops it.",
    )
    demo.add_argument(
        "--listen",
        default="127.0.0.1:9813",
        metavar="HOST:PORT",
        help="where /metrics and the status page are served (default 127.0.0.1:9813; "
        "a free port if that one is taken)",
    )
    demo.add_argument(
        "--interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="probe interval (default 5)",
    )
    demo.add_argument("--cycles", type=_positive_int, metavar="N", help="stop after N cycles")
    demo.add_argument(
        "--plain-http",
        action="store_true",
        help="serve the edges over HTTP instead of HTTPS with a throwaway CA",
    )


def _add_check(commands: Any, name: str = "check") -> argparse.ArgumentParser:
    if name == "check":
        check = commands.add_parser(
            "check",
            help="fetch URLs from every edge address of their host and compare",
            description=(
                "Resolve every A and AAAA record of each URL's host, fetch the URL from each "
                "address with Host and TLS SNI pinned to the host name, hash every body and "
                "compare. Exit 0: every edge consistent; 1: an edge diverges or fails; 2: bad "
                "usage; 3: a name resolved to no address."
            ),
        )
    else:
        check = commands.add_parser(
            "wait",
            help="the publish gate: check again every --every until every edge converged",
            description=(
                "Take every argument of check; check, and check again every --every, until one "
                "round in which check would exit 0 (exit 0), or the --deadline (exit 1, naming "
                "the edges that never converged). One progress line per round on stderr. "
                "Exit 2: bad usage; 3: no round ever resolved the names."
            ),
        )
        check.add_argument(
            "--deadline", type=_long_seconds, default=1800.0, metavar="DURATION",
            help="give up after this long, e.g. 30m (default 30m)",
        )  # fmt: skip
        check.add_argument(
            "--every", type=_long_seconds, default=10.0, metavar="DURATION",
            help="start a round this often, e.g. 10s (default 10s)",
        )  # fmt: skip
    check.add_argument("urls", nargs="*", metavar="URL", help="http(s) URL to check on every edge")
    check.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="DNS server to ask (repeatable; [IPV6]:PORT for v6); default: /etc/resolv.conf",
    )
    check.add_argument(
        "--vantage",
        action="append",
        default=[],
        metavar="NAME=SUBNET[@RESOLVER]",
        help="ask as users in SUBNET do (EDNS Client Subnet), of RESOLVER (default: the first "
        "--resolver); repeatable: the edges of every vantage are probed, each once",
    )
    check.add_argument("--ca-file", metavar="PEM", help="CA bundle for TLS; default: system store")
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout, connect + whole body (default 10)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document, no table")
    check.add_argument(
        "--insecure", action="store_true", help="skip certificate verification (SNI still sent)"
    )
    check.add_argument(
        "--origin",
        metavar="URL",
        help="authoritative copy (scheme, host, port, optional prefix); each URL's path is "
        "fetched from it by its own name and used as the reference",
    )
    check.add_argument(
        "--max-body-size",
        type=_size,
        default="4GiB",
        metavar="SIZE",
        help="bodies larger than this are the error too_large (default 4GiB)",
    )
    check.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="requests in flight at once, over all edges and URLs (default 64)",
    )
    check.add_argument(
        "--max-edges",
        type=_positive_int,
        default=256,
        metavar="N",
        help="probe at most N addresses per host, the first N in address order (default 256)",
    )
    apt = check.add_argument_group(
        "APT repositories",
        "--apt BASE_URL --suite SUITE: on every edge, InRelease (or Release) and every index it "
        "lists, fetched from that same edge and checked against that edge's Release, as "
        "apt-get update would. Exit 1 when apt would fail on an edge or an edge is stale.",
    )
    apt.add_argument(
        "--apt", metavar="BASE_URL", help="repository root (the folder holding dists/)"
    )
    apt.add_argument("--suite", action="append", default=[], metavar="SUITE", help="e.g. bookworm")
    apt.add_argument("--component", action="append", default=[], metavar="C", help="default: all")
    apt.add_argument("--arch", action="append", default=[], metavar="A", help="default: all")
    apt.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="a package version that must be in the indexes of every edge",
    )
    apt.add_argument(
        "--keyring",
        metavar="FILE",
        help="verify InRelease / Release.gpg with this keyring, as apt's signed-by "
        "(armored or binary); without one a signature is detected, not verified",
    )
    apt.add_argument(
        "--trusted", action="store_true", help="as apt's [trusted=yes]: accept an unsigned Release"
    )
    apt.add_argument(
        "--apt-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an apt option that changes apt's verdict: " + ", ".join(APT_OPTIONS),
    )
    go = check.add_argument_group(
        "Go module proxies",
        "--goproxy BASE_URL --module M[@V]: on every edge, @v/list and each version's .mod and "
        ".zip; the zip must be readable and its h1: equal the go.sum line (--gosum) or, "
        "without one, what most edges serve.",
    )
    go.add_argument("--goproxy", metavar="BASE_URL", help="the proxy's root, as in GOPROXY")
    go.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="M[@V]",
        help="module (repeatable); without @V, the newest versions listed",
    )
    go.add_argument("--gosum", metavar="FILE", help="go.sum whose h1: lines are the reference")
    sums = check.add_argument_group(
        "Checksum manifests",
        "--checksums MANIFEST_URL: SHA256SUMS-style or JSON with sha256 fields; every artifact "
        "it lists (or each --artifact) is hashed on every edge and checked against the manifest "
        "from the same edge, or from --origin when given.",
    )
    sums.add_argument("--checksums", metavar="MANIFEST_URL", help="the manifest's URL")
    sums.add_argument(
        "--artifact", action="append", default=[], metavar="NAME", help="only these (repeatable)"
    )
    check.add_argument(
        "--http",
        choices=("1.1", "2", "auto"),
        help="HTTP version: auto offers h2 and http/1.1 by ALPN (default for --goproxy and "
        "--checksums, as go and curl do); 2 requires h2; 1.1 (default for URLs and --apt)",
    )
    check.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight odd edges in the table (default: when stdout is a terminal)",
    )
    parser: argparse.ArgumentParser = check
    return parser


def _duration(limit_s: float, limit_text: str) -> Callable[[str], float]:
    """An argparse type: a duration (10, 2.5s, 5m) more than 0 and at most the limit."""

    def parse(text: str) -> float:
        from prober.units import parse_duration

        try:
            value = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not 0 < value <= limit_s:
            raise argparse.ArgumentTypeError(
                f"must be more than 0 and at most {limit_text}, got {text!r}"
            )
        return value

    return parse


_seconds = _duration(3600, "3600 seconds")  # per request
_long_seconds = _duration(7 * 86400, "7d")  # a wait's deadline and rounds


def _size(text: str) -> int:
    from prober.units import parse_size

    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 byte")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 10000:
        raise argparse.ArgumentTypeError(f"expected a whole number 1-10000, got {text!r}")
    return int(text)


def check_url(text: str, what: str = "URL") -> str:
    """An http(s) URL with a host, or UsageError naming what is wrong with it."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad {what} {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"bad {what} {text!r}: scheme must be http or https")
    if not parts.hostname:
        raise UsageError(f"bad {what} {text!r}: no host name")
    if port == 0:
        raise UsageError(f"bad {what} {text!r}: port must be 1-65535")
    return text


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop when it is installed.

    The result comes back through a box, not as the main task's result: on its way out,
    asyncio.Runner calls signal.getsignal(), which formats the repr of its SIGINT handler,
    and with it the main task and its result: a whole report, tens of milliseconds."""
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
    return box[0]


def _check(args: argparse.Namespace) -> int:
    from prober.check import run_check, ssl_context_for

    names, config = check_config(args)
    ssl_context_for(args.ca_file, args.insecure)  # a CA file that cannot be used: one line
    report = run_async(run_check(config, names))
    if args.json:
        from prober.render import dumps

        print(dumps(report, pretty=sys.stdout.isatty()))
    else:
        from prober.render import table

        colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        sys.stdout.write(table(report, colour))
    for target in report.targets:
        if target.dns_error:
            sys.stderr.write(f"cdnprobe: {target.dns_error}\n")
    return check_exit_code(report)


# apt's own option names (apt.conf) → the APT target's fields, with their values' parsers
APT_OPTIONS = {
    "Acquire::Languages": "languages",
    "Acquire::By-Hash": "by_hash",
    "Acquire::Check-Valid-Until": "check_valid_until",
    "Acquire::Max-FutureTime": "max_future_seconds",
}


def _apt_options(items: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        field = APT_OPTIONS.get(name.strip())
        if not sep or field is None:
            known = ", ".join(APT_OPTIONS)
            raise UsageError(f"--apt-option {item!r}: expected NAME=VALUE with NAME one of {known}")
        value = value.strip()
        if field == "languages":
            fields[field] = [] if value == "none" else [v for v in value.split(",") if v]
        elif field == "check_valid_until":
            fields[field] = value.lower() in ("1", "true", "yes", "on")
        else:
            fields[field] = value
    return fields


# Config fields as the check command's options, for one-line messages about them.
_OPTIONS = {
    "url": "URL", "paths": "URL", "origin": "--origin URL", "timeout": "--timeout",
    "resolvers": "--resolver", "max_body_size": "--max-body-size", "max_edges": "--max-edges",
    "concurrency": "--concurrency", "suites": "--suite", "components": "--component",
    "architectures": "--arch", "expect": "--expect", "modules": "--module",
    "artifacts": "--artifact", "manifest": "--checksums MANIFEST_URL", "http": "--http",
    "gosum": "--gosum", "vantages": "--vantage", "keyring": "--keyring",
    "languages": "--apt-option Acquire::Languages",
    "by_hash": "--apt-option Acquire::By-Hash",
    "check_valid_until": "--apt-option Acquire::Check-Valid-Until",
    "max_future_seconds": "--apt-option Acquire::Max-FutureTime",
}  # fmt: skip


def check_config(args: argparse.Namespace) -> tuple[list[str], Config]:
    """The check's arguments as the daemon's validated config: one target per host (plain
    URLs) or the one repository asked for, and the names to show for them."""
    from pydantic import ValidationError

    from prober.config import Config

    urls = [check_url(u) for u in args.urls]
    modes = [bool(urls), bool(args.apt), bool(args.goproxy), bool(args.checksums)]
    if sum(modes) != 1:
        raise UsageError(
            "give URLs to check, or one of --apt, --goproxy, --checksums (not several)"
        )
    if args.goproxy and not args.module:
        raise UsageError("--goproxy needs at least one --module")
    if args.apt and not args.suite:
        raise UsageError("--apt needs at least one --suite")
    apt_only = (args.suite, args.component, args.arch, args.expect, args.keyring, args.trusted,
                args.apt_option)  # fmt: skip
    if not args.apt and any(apt_only):
        raise UsageError("--suite, --component, --arch and --expect go with --apt")
    if args.keyring and not os.path.isfile(args.keyring):
        raise UsageError(f"--keyring {args.keyring}: no such file")
    if args.origin:
        check_url(args.origin, "--origin URL")
    common: dict[str, Any] = {
        "resolvers": list(args.resolver), "ca_file": args.ca_file, "insecure": args.insecure,
        "timeout": args.timeout, "max_body_size": args.max_body_size,
        "max_edges": args.max_edges,
    }  # fmt: skip
    if args.http:
        common["http"] = args.http
    if args.vantage:
        common["vantages"] = [_vantage(v) for v in args.vantage]
    names, targets = _check_targets(args, urls, common)
    try:
        return names, Config(concurrency=args.concurrency, targets=targets)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        inner, _, message = message.rpartition("\x00")  # a model check names its own field
        where = error["loc"][3:] if error["loc"][:1] == ("targets",) else error["loc"]
        loc = [*where, inner.split("[")[0].split(".")[0]]  # past targets.N.<type>
        field = next((str(p) for p in reversed(loc) if str(p) in _OPTIONS), "")
        option = _OPTIONS.get(field, field)
        if field == "gosum":
            option = f"--gosum {args.gosum}"
        raise UsageError(f"{option}: {message}" if option else message) from None


def _check_targets(
    args: argparse.Namespace, urls: list[str], common: dict[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    if args.apt:
        url = check_url(args.apt, "--apt BASE_URL")
        apt = {"type": "apt", "url": url, "suites": args.suite, "components": args.component,
               "architectures": args.arch, "expect": args.expect, "keyring": args.keyring,
               "trusted": args.trusted, **_apt_options(args.apt_option)}  # fmt: skip
        return [url], [{**common, **apt, "name": "check"}]
    if args.goproxy:
        url = check_url(args.goproxy, "--goproxy BASE_URL")
        go = {"type": "goproxy", "url": url, "modules": args.module, "gosum": _gosum(args.gosum)}
        return [url], [{**common, **go, "name": "check"}]
    if args.checksums:
        url = check_url(args.checksums, "--checksums MANIFEST_URL")
        base, path = _split(url)
        sums = {"type": "checksums", "url": base, "manifest": path, "artifacts": args.artifact,
                "origin": args.origin}  # fmt: skip
        return [url], [{**common, **sums, "name": "check"}]
    grouped: dict[str, list[str]] = {}
    for url in urls:
        base, path = _split(url)
        paths = grouped.setdefault(base, [])
        if path not in paths:
            paths.append(path)
    names = [urlsplit(base).hostname or base for base in grouped]
    targets = [
        {**common, "name": f"t{i}", "url": base, "paths": paths, "origin": args.origin}
        for i, (base, paths) in enumerate(grouped.items())
    ]
    return names, targets


def _vantage(text: str) -> dict[str, str | None]:
    name, sep, rest = text.partition("=")
    subnet, _, resolver = rest.partition("@")
    if not sep or not name or not (subnet or resolver):
        raise UsageError(f"bad --vantage {text!r}: expected NAME=SUBNET[@RESOLVER]")
    return {"name": name, "subnet": subnet or None, "resolver": resolver or None}


def _split(url: str) -> tuple[str, str]:
    """A URL as the base (scheme, host, port) and the path with its query."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}", path


def _gosum(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as file:
            return [line for line in file if line.strip()]
    except OSError as exc:
        raise UsageError(f"--gosum {path}: {exc.strerror}") from None
    except ValueError as exc:  # not UTF-8
        raise UsageError(f"--gosum {path}: {exc}") from None


def check_exit_code(report: Report) -> int:
    from prober.wait import round_ok

    if any(t.dns_error for t in report.targets):
        return EXIT_UNRESOLVED
    return EXIT_OK if round_ok(report) else EXIT_DIVERGENT


def _wait(args: argparse.Namespace) -> int:
    from prober.check import CheckSession, ssl_context_for
    from prober.wait import wait_until_converged

    names, config = check_config(args)
    ssl_context_for(args.ca_file, args.insecure)

    def progress(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    async def gate() -> Any:
        session = CheckSession(config)
        try:
            return await wait_until_converged(
                session, deadline_s=args.deadline, every_s=args.every, names=names,
                progress=progress,
            )  # fmt: skip
        finally:
            await session.close()

    result = run_async(gate())
    if args.json:
        from prober.render import dumps, wait_json

        doc = wait_json(
            result.report, converged=result.converged, rounds=result.rounds,
            elapsed_s=result.elapsed_s, since=result.since,
        )  # fmt: skip
        print(dumps(doc, pretty=sys.stdout.isatty()))
    else:
        from prober.render import table

        colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        sys.stdout.write(table(result.report, colour))
    if result.converged:
        return EXIT_OK
    if not result.ever_resolved:
        for target in result.report.targets:
            if target.dns_error:
                sys.stderr.write(f"cdnprobe: {target.dns_error}\n")
        return EXIT_UNRESOLVED
    waiting = [address for (_, address), since in result.since.items() if since is None]
    never = ", ".join(waiting) or "the objects (no edge serves them)"
    sys.stderr.write(
        f"cdnprobe: not converged after {result.rounds} rounds ({result.elapsed_s:.0f}s): {never}\n"
    )
    return EXIT_DIVERGENT


def _setup_logging() -> None:
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s level=%(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def _run(args: argparse.Namespace) -> int:
    from prober.config import load_config
    from prober.daemon.shard import Shard

    shard = Shard.parse(args.shard) if args.shard else None
    config = load_config(args.config)
    web_config = None
    if args.web_config:
        from prober.daemon.webconfig import load_web_config

        web_config = load_web_config(args.web_config)
    listen = _listen(args.listen) if args.listen else config.listen
    _setup_logging()
    return run_async(_serve(config, args.config, listen, shard, web_config))


def _listen(text: str) -> str:
    from prober.config import Config

    try:
        Config.model_validate(
            {"listen": text, "targets": [{"name": "x", "url": "http://x", "paths": ["/"]}]}
        )
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [{"msg": "expected HOST:PORT"}])()
        why = str(errors[0]["msg"]).removeprefix("Value error, ")
        raise UsageError(f"bad --listen {text!r}: {why}") from None
    return text


async def _serve(
    config: Config,
    path: str | None,
    listen: str,
    shard: Shard | None,
    web_config: WebConfig | None,
) -> int:
    import logging

    from prober.daemon.core import Daemon
    from prober.daemon.server import serve

    daemon = Daemon(config, config_path=path, shard=shard)
    log = logging.getLogger("cdnprobe")
    if shard is not None:
        mine, every = len(daemon.my_targets(config)), plural(len(config.targets), "target")
        log.info("shard %d/%d: probing %d of %s", shard.index, shard.count, mine, every)
    try:
        await serve(
            daemon,
            listen,
            on_listening=lambda a: log.info("listening on %s", a),
            web_config=web_config,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    return EXIT_OK


def _validate_config(args: argparse.Namespace) -> int:
    from prober.config import load_config

    file = args.file or args.config_file
    if not file or (args.file and args.config_file):
        raise UsageError("validate-config takes one config file: FILE or --config FILE")
    config = load_config(file)
    print(f"{file}: ok, {plural(len(config.targets), 'target')}")
    return EXIT_OK


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _config_schema(args: argparse.Namespace) -> int:
    import json

    from prober.config import config_schema

    print(json.dumps(config_schema(), indent=2))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from prober.demo import run_demo

    _listen(args.listen)
    _setup_logging()
    run_async(run_demo(args.listen, args.interval, args.cycles, tls=not args.plain_http))
    return EXIT_OK


_COMMANDS = {
    "check": _check,
    "wait": _wait,
    "run": _run,
    "validate-config": _validate_config,
    "config-schema": _config_schema,
    "demo": _demo,
}


def entry() -> NoReturn:
    """The `cdnprobe` command. After the command, the exit handlers run and the output is
    flushed, but the heap is not torn down object by object (10-15 ms of a one-shot
    `check` went to freeing what the process exit frees anyway)."""
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # e.g. the reader of a pipe went away: as Python itself reports it
            code = code or 120
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ProberError as exc:
        sys.stderr.write(f"cdnprobe: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
