"""YAML → frozen, validated config. Every error is one line: FILE: field.path: problem."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from prober.discovery import parse_resolver
from prober.errors import ConfigError, UsageError
from prober.units import parse_duration, parse_size

if TYPE_CHECKING:
    import yaml

M = TypeVar("M", bound=BaseModel)
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _duration(value: Any) -> float:
    return parse_duration(value)


def _bounded(low: float, high: float) -> AfterValidator:
    def check(seconds: float) -> float:
        if seconds < low:
            raise ValueError(f"must be at least {_fmt(low)}")
        if seconds > high:
            raise ValueError(f"must be at most {_fmt(high)}")
        return seconds

    return AfterValidator(check)


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


_DURATION_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"}, {"type": "number"}]}
)
_SIZE_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^\d+\s*[kKmMgGtT]?i?[bB]?$"}, {"type": "integer"}]}
)
Interval = Annotated[float, BeforeValidator(_duration), _bounded(1, 86400), _DURATION_SCHEMA]
Timeout = Annotated[float, BeforeValidator(_duration), _bounded(0.1, 3600), _DURATION_SCHEMA]
DnsInterval = Annotated[float, BeforeValidator(_duration), _bounded(0, 86400), _DURATION_SCHEMA]


def _size(value: Any) -> int:
    size = parse_size(value)
    if size < 1:
        raise ValueError("must be at least 1 byte")
    return size


Size = Annotated[int, BeforeValidator(_size), _SIZE_SCHEMA]


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("scheme must be http or https")
    if not parts.hostname:
        raise ValueError("no host name")
    if parts.query or parts.fragment:
        raise ValueError("a base URL takes no query or fragment; put them in paths")
    return value


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with /")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


def _resolver(value: str) -> str:
    try:
        parse_resolver(value)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return value


def _label_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("must be 1-64 characters of letters, digits, _ . : -")
    return value


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT with a port 1-65535")
    host = host.strip("[]")
    if host not in ("", "localhost"):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError("HOST must be an IP address, localhost or empty") from None
    return value


def _word(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+~/-]{0,99}", value):
        raise ValueError("must be a plain name (letters, digits, _ . + ~ / -)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _http_version(value: Any) -> str:
    # YAML reads `http: 1.1` as a float and `http: 2` as an int: both mean the version.
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if text not in ("1.1", "2", "auto"):
        raise ValueError("must be 1.1, 2 or auto")
    return str(text)


HttpVersion = Annotated[
    str, BeforeValidator(_http_version), WithJsonSchema({"enum": ["1.1", "2", "auto"]})
]
_ONE_STRING = WithJsonSchema({"type": "string"})


def _expectation(value: Any) -> tuple[str, str]:
    if not isinstance(value, str):
        raise ValueError("expected name=version")
    from prober.validators.apt import parse_expect  # only APT configs pay for the APT rules

    return parse_expect([value])[0]


def _module(value: Any) -> tuple[str, str | None]:
    if not isinstance(value, str):
        raise ValueError("must be a module path like example.org/mod, optionally @version")
    module, _, version = value.partition("@")
    if (
        not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.~/-]{0,199}", module)
        or "." not in module.split("/")[0]
    ):
        raise ValueError("must be a module path like example.org/mod, optionally @version")
    if "@" in value and not re.fullmatch(r"v[0-9A-Za-z.+-]{1,80}", version):
        raise ValueError("the version must look like v1.2.3")
    return module, (version if "@" in value else None)


def _gosum_line(value: Any) -> tuple[str, str, str]:
    if not isinstance(value, str):
        raise ValueError("expected a go.sum line")
    from prober.validators.goproxy import parse_gosum  # only Go configs pay for go's rules

    ((module, version), h1), *_ = parse_gosum([value]).items()
    return module, version, h1


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Word = Annotated[str, AfterValidator(_word)]
Suite = Word
Expectation = Annotated[tuple[str, str], BeforeValidator(_expectation), _ONE_STRING]
Module = Annotated[tuple[str, str | None], BeforeValidator(_module), _ONE_STRING]
GoSumLine = Annotated[tuple[str, str, str], BeforeValidator(_gosum_line), _ONE_STRING]
UrlPath = Annotated[str, AfterValidator(_path)]
Resolver = Annotated[str, AfterValidator(_resolver)]


def _subnet(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError("must be a client subnet like 198.51.100.0/24") from None


class VantageConfig(_Strict):
    """A place users ask from: its resolver is told this client subnet (EDNS Client Subnet)."""

    name: Annotated[str, AfterValidator(_label_name)]
    subnet: Annotated[str, AfterValidator(_subnet)] | None = None
    resolver: Resolver | None = Field(
        default=None, description="default: the target's first resolver, or the system's"
    )


class _Target(_Strict):
    """What every kind of target has: a name, where its edges are, how to probe them."""

    name: Annotated[str, AfterValidator(_label_name)]
    url: HttpUrl = Field(description="scheme, host and port of every request")
    interval: Interval = 30.0
    timeout: Timeout = 10.0
    resolvers: list[Resolver] = Field(default_factory=list, max_length=8)
    ca_file: str | None = None
    insecure: bool = False
    max_body_size: Size = 4 << 30
    connections_per_edge: int = Field(default=4, ge=1, le=64)
    max_edges: int = Field(default=256, ge=1, le=10000, description="addresses probed at most")
    paths: list[UrlPath] = Field(default_factory=list, max_length=1000)
    series: Literal["full", "problems"] | None = Field(
        default=None,
        description="per edge x path series: full, or problems (only where not ok); "
        "default: the file's series",
    )
    vantages: list[VantageConfig] = Field(
        default_factory=list,
        max_length=64,
        description="ask these vantages (ECS subnet and/or resolver) instead of the resolvers",
    )

    @model_validator(mode="after")
    def _vantage_names_unique(self) -> _Target:
        seen: set[str] = set()
        for i, vantage in enumerate(self.vantages):
            if vantage.name in seen:
                raise _FieldError(f"vantages[{i}].name", f"duplicate vantage {vantage.name!r}")
            seen.add(vantage.name)
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def _no_paths(self, why: str) -> None:
        if self.paths:
            raise _FieldError("paths", why)


class RevalidateConfig(_Strict):
    """Bytes only when they changed: between full passes, each edge is asked with its own
    last ETag / Last-Modified, and a 304 reuses its last full hash."""

    full_every: int = Field(
        ge=1, le=10000, description="a full pass (every body fetched and hashed) every N cycles"
    )


class PlainTarget(_Target):
    """Paths compared byte for byte across the edges (`type: http`, the default)."""

    type: Literal["http"] = "http"
    revalidate: RevalidateConfig | None = Field(
        default=None, description="absent: every body is fetched and hashed every cycle"
    )
    origin: HttpUrl | None = Field(default=None, description="the reference copy, by its own name")
    http: HttpVersion = Field(default="1.1", description="HTTP version: 1.1, 2 or auto (ALPN)")

    @model_validator(mode="after")
    def _paths_given(self) -> PlainTarget:
        if not self.paths:
            raise _FieldError("paths", "required for type http: the paths to compare")
        seen: set[str] = set()
        for i, path in enumerate(self.paths):
            if path in seen:
                raise _FieldError(f"paths[{i}]", f"duplicate path {path!r}")
            seen.add(path)
        return self


class AptTarget(_Target):
    """An APT repository: each edge's Release and the indexes it lists (`type: apt`)."""

    type: Literal["apt"]
    suites: list[Suite] = Field(default_factory=list, max_length=100)
    components: list[Word] = Field(default_factory=list, description="default: all")
    architectures: list[Word] = Field(default_factory=list, description="default: all")
    expect: list[Expectation] = Field(
        default_factory=list, description="name=version that every edge must list"
    )
    keyring: str | None = Field(
        default=None, description="verify signatures with this keyring (apt's signed-by)"
    )
    trusted: bool = Field(default=False, description="apt's [trusted=yes]: accept unsigned")
    languages: list[Word] = Field(
        default_factory=lambda: ["en"], description="Acquire::Languages (default en)"
    )
    by_hash: Literal["yes", "no", "force"] | None = Field(
        default=None, description="Acquire::By-Hash; default: what the Release says"
    )
    check_valid_until: bool = True
    max_future_seconds: float = Field(default=10.0, ge=0, le=86400 * 365)
    http: HttpVersion = Field(default="1.1", description="apt speaks HTTP/1.1")
    revalidate: RevalidateConfig | None = Field(
        default=None,
        description="absent: every index is fetched and hashed every cycle; set: an edge "
        "whose InRelease is byte-identical to its last one is asked for its indexes with "
        "its own validators",
    )

    @model_validator(mode="after")
    def _suites_given(self) -> AptTarget:
        if not self.suites:
            raise _FieldError("suites", "required for type apt, e.g. [bookworm]")
        self._no_paths("not used by type apt: the indexes come from each Release")
        return self


class GoproxyTarget(_Target):
    """A Go module proxy: list, latest, info, mod and zip per module (`type: goproxy`)."""

    type: Literal["goproxy"]
    gosum: list[GoSumLine] = Field(
        default_factory=list, description="go.sum lines, the reference h1: hashes"
    )
    modules: list[Module] = Field(
        default_factory=list, max_length=100, description="module or module@version"
    )
    http: HttpVersion = Field(default="auto", description="go speaks HTTP/2 where offered")
    revalidate: RevalidateConfig | None = Field(
        default=None,
        description="absent: every file is fetched and read every cycle; set: each edge is "
        "asked with its own validators, a 304 reuses its last reading (the zip's h1: check)",
    )

    @model_validator(mode="after")
    def _modules_given(self) -> GoproxyTarget:
        if not self.modules:
            raise _FieldError(
                "modules", "required for type goproxy, e.g. [golang.org/x/mod@v0.20.0]"
            )
        self._no_paths("not used by type goproxy")
        return self


class ChecksumsTarget(_Target):
    """A checksum manifest and the artifacts it lists (`type: checksums`)."""

    type: Literal["checksums"]
    manifest: UrlPath | None = Field(
        default=None, description="the manifest's path (SHA256SUMS or JSON)"
    )
    artifacts: list[Word] = Field(
        default_factory=list, description="names to check; default: all listed"
    )
    origin: HttpUrl | None = Field(default=None, description="read the manifest from here")
    rehash_every: int = Field(
        default=1,
        ge=1,
        le=10000,
        description="while Content-Length, ETag and Last-Modified are unchanged "
        "(a HEAD per cycle), hash an artifact fully only every N cycles (1: every cycle)",
    )
    http: HttpVersion = Field(default="auto", description="HTTP version: 1.1, 2 or auto (ALPN)")
    revalidate: RevalidateConfig | None = Field(
        default=None,
        description="absent: every file is fetched and hashed every cycle; set: each edge is "
        "asked with its own validators, a 304 reuses its last hash (and its manifest as read); "
        "not with rehash_every above 1",
    )

    @model_validator(mode="after")
    def _manifest_given(self) -> ChecksumsTarget:
        if not self.manifest:
            raise _FieldError("manifest", "required for type checksums, e.g. /dl/SHA256SUMS")
        self._no_paths("not used by type checksums")
        if self.revalidate is not None and self.rehash_every > 1:
            # both reuse an artifact's last hash, by other evidence (a 304, a HEAD): one rule
            # per target, so that a reused hash's age always means one thing
            raise _FieldError("revalidate", "not together with rehash_every above 1: choose one")
        return self


KIND_MODELS: dict[str, type[_Target]] = {
    "http": PlainTarget,
    "apt": AptTarget,
    "goproxy": GoproxyTarget,
    "checksums": ChecksumsTarget,
}
_BAD_TYPE = "Input should be " + ", ".join(f"'{k}'" for k in list(KIND_MODELS)[:-1])
_BAD_TYPE += f" or '{list(KIND_MODELS)[-1]}'"


def _kind_of(value: Any) -> str | None:
    kind = value.get("type", "http") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else None


TargetConfig = Annotated[
    Annotated[PlainTarget, Tag("http")]
    | Annotated[AptTarget, Tag("apt")]
    | Annotated[GoproxyTarget, Tag("goproxy")]
    | Annotated[ChecksumsTarget, Tag("checksums")],
    Discriminator(_kind_of),
]
AnyTarget = PlainTarget | AptTarget | GoproxyTarget | ChecksumsTarget


class Config(_Strict):
    listen: Annotated[str, AfterValidator(_listen)] = "0.0.0.0:9813"
    concurrency: int = Field(default=64, ge=1, le=10000, description="requests in flight at once")
    dns_min_interval: DnsInterval = Field(default=5.0, description="re-resolve at most this often")
    series: Literal["full", "problems"] = Field(
        default="full", description="the targets' default: full, or problems (only where not ok)"
    )
    series_budget: int = Field(
        default=200000, ge=1, description="series this instance may export before it says so"
    )
    targets: list[TargetConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique(self) -> Config:
        seen: set[str] = set()
        for i, target in enumerate(self.targets):
            if target.name in seen:
                raise _FieldError(f"targets[{i}].name", f"duplicate target name {target.name!r}")
            seen.add(target.name)
        return self


class _FieldError(ValueError):
    """A model-level check that knows the field it is about."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}\x00{problem}")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; ConfigError names the file, the field and the problem."""
    return parse_config(read_text(path), str(path))


def parse_config(text: str, file: str = "<config>") -> Config:
    config = parse_model(text, file, Config, "must be a YAML mapping with a 'targets' list")
    _check_files(config, file)
    return config


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc}") from None


def parse_model(text: str, file: str, model: type[M], not_a_mapping: str) -> M:
    """YAML text → a validated model, or ConfigError with the first problem in one line."""
    try:
        import yaml  # `check` builds its config from argv: no YAML to read

        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(file, _yaml_where(exc), _yaml_problem(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(file, "", not_a_mapping)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(file, *_first_error(exc)) from None


def _check_files(config: Config, file: str) -> None:
    for i, target in enumerate(config.targets):
        files = {"ca_file": target.ca_file}
        if isinstance(target, AptTarget):
            files["keyring"] = target.keyring
        for key, value in files.items():
            if value is not None and not Path(value).is_file():
                raise ConfigError(file, f"targets[{i}].{key}", f"no such file: {value}")


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors(include_url=False)[0]
    where = _location(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        where, message = f"{where}.type", _BAD_TYPE
    if "\x00" in message:  # a _FieldError: its own field, below the model's location
        inner, message = message.split("\x00", 1)
        where = f"{where}.{inner}" if where else inner
    if error["type"] == "extra_forbidden":
        message = "unknown field" + _did_you_mean(str(error["loc"][-1]))
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "too_short":
        message = "must not be empty"
    return where, message


def _did_you_mean(key: str) -> str:
    known = set(Config.model_fields)
    for model in KIND_MODELS.values():
        known.update(model.model_fields)
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for i, part in enumerate(loc):
        if part in KIND_MODELS and i and isinstance(loc[i - 1], int):
            continue  # the discriminator's tag (targets.0.apt.suites): not a field
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return f"invalid YAML: {problem or exc}".replace("\n", " ")


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file. The default kind's target keeps the name its
    schema had before targets had kinds (TargetConfig), for editors that refer to it."""
    schema = Config.model_json_schema()
    text = json.dumps(schema).replace('"#/$defs/PlainTarget"', '"#/$defs/TargetConfig"')
    renamed: dict[str, Any] = json.loads(text)
    renamed["$defs"]["TargetConfig"] = renamed["$defs"].pop("PlainTarget")
    return renamed
