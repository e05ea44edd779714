"""A real APT repository for the tests: small .debs built with dpkg-deb, published twice by
aptly (version 1, then version 2 a second later), and a private, real `apt-get update`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab import Lab

SUITE = "stable"
INDEX = "dists/stable/main/binary-amd64"


def _deb(work: Path, name: str, version: str) -> Path:
    root = work / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name / "README").write_text(f"{name} {version}\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: cdnprobe tests <tests@cdnprobe.invalid>\n"
        f"Description: {name} for the cdnprobe APT tests\n"
    )
    deb = work / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "-Zgzip", "--build", str(root), str(deb)], check=True, capture_output=True
    )
    return deb


def serve(lab: Lab, address: str, tree: Path) -> None:
    """Switch an edge to a publish: the new tree beside, then swapped in by one rename (as a
    CDN's sync does, one edge at a time)."""
    root = lab.docroot(address)
    fresh = root.with_name(root.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(tree, fresh)
    old = root.with_name(root.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    fresh.rename(root)


@dataclass
class Published:
    v1: Path  # the public tree of the first publish
    v2: Path  # the public tree after the second


def publish_two_versions(work: Path, signed: bool = True) -> Published:
    """v1: hello-cdn 1.0; v2 (one second later): hello-cdn 2.0 and world-cdn 1.0. `signed`:
    each tree gets InRelease and Release.gpg, as real repositories have (without them,
    apt and cdnprobe refuse the repository unless it is trusted=yes); the key is
    work/key.gpg."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "aptly.conf"
    config.write_text(json.dumps({"rootDir": str(work / "aptly"), "architectures": ["amd64"]}))

    def aptly(*args: str) -> None:
        subprocess.run(
            ["aptly", f"-config={config}", *args], check=True, capture_output=True, timeout=120
        )

    aptly("repo", "create", f"-distribution={SUITE}", "-component=main", "cdn")
    aptly("repo", "add", "cdn", str(_deb(work, "hello-cdn", "1.0")))
    aptly("publish", "repo", "-skip-signing", "-architectures=amd64", "cdn")
    v1 = work / "v1"
    shutil.copytree(work / "aptly" / "public", v1)
    time.sleep(1.1)  # Release Date has one-second resolution: v2 must be visibly newer
    aptly(
        "repo",
        "add",
        "cdn",
        str(_deb(work, "hello-cdn", "2.0")),
        str(_deb(work, "world-cdn", "1.0")),
    )
    aptly("repo", "remove", "cdn", "hello-cdn (= 1.0)")
    aptly("publish", "update", "-skip-signing", SUITE)
    v2 = work / "v2"
    shutil.copytree(work / "aptly" / "public", v2)
    if signed:
        for tree in (v1, v2):
            sign_release(tree / "dists" / SUITE, work, detached=True)
        stop_gpg_agent(gnupg_dir(work))
    return Published(v1, v2)


def _publish_one(work: Path, by_hash: bool) -> Path:
    """One unsigned aptly publish of hello-cdn 1.0 (`by_hash`: with Acquire-By-Hash);
    returns the public tree."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "aptly.conf"
    config.write_text(json.dumps({"rootDir": str(work / "aptly"), "architectures": ["amd64"]}))
    for args in (
        ["repo", "create", f"-distribution={SUITE}", "-component=main", "cdn"],
        ["repo", "add", "cdn", str(_deb(work, "hello-cdn", "1.0"))],
        ["publish", "repo", "-skip-signing", "-architectures=amd64"]
        + (["-acquire-by-hash"] if by_hash else [])
        + ["cdn"],
    ):
        subprocess.run(
            ["aptly", f"-config={config}", *args], check=True, capture_output=True, timeout=120
        )
    return work / "aptly" / "public"


def publish_by_hash(work: Path) -> Path:
    """One publish with Acquire-By-Hash: yes (aptly -acquire-by-hash); returns the tree."""
    return _publish_one(work, by_hash=True)


@dataclass
class AptRun:
    ok: bool
    output: str

    @property
    def failure(self) -> str | None:
        """The kind of failure apt reported, in cdnprobe's words (the first that matches:
        apt says a refused signature and then that the repository is not signed)."""
        if self.ok:
            return None
        lines = self.output.splitlines()
        errors = [x for x in lines if x.startswith(("E: ", "W: Failed"))]
        if any("is not signed" in x for x in errors):  # the W: GPG error says why
            errors = [x for x in lines if x.startswith("W: GPG error")] + errors
        for line in errors:  # apt's first error is the cause, the rest follows from it
            for needle, reason in FAILURES:
                if needle in line:
                    return reason
        return "other"

    @property
    def failed_files(self) -> list[str]:
        """The files apt names in "Failed to fetch URL" and "The repository 'URL SUITE FILE'"
        lines, relative to dists/SUITE (InRelease, Release, main/binary-amd64/Packages.bz2)."""
        found = re.findall(r"Failed to fetch \S+/dists/[^/\s]+/(\S+)", self.output)
        found += re.findall(r"[EW]: (?:GPG error: )?\S+ \S+ (InRelease|Release)\b", self.output)
        found += re.findall(r"The repository '\S+ \S+ (InRelease|Release)'", self.output)
        found += re.findall(r"Release file for \S+/dists/[^/\s]+/(InRelease|Release)", self.output)
        return found


# apt 2.6's messages (apt-pkg/acquire-item.cc, methods/gpgv.cc, methods/basehttp.cc)
FAILURES = (
    ("unexpected size", "size_mismatch"),
    ("Hash Sum mismatch", "hash_mismatch"),
    ("is expired", "expired"),
    ("is not valid yet", "not_valid_yet"),
    ("NO_PUBKEY", "no_pubkey"),
    ("BADSIG", "bad_signature"),
    ("got 'NODATA'", "bad_signature"),
    ("got 'NOSPLIT'", "bad_signature"),
    ("is forbidden", "redirect_refused"),
    ("is not signed", "not_signed"),
    ("Insufficient information available", "weak_hashes"),
    ("provides only weak security information", "weak_hashes"),
    ("404", "missing"),
    ("500", "missing"),
    ("403", "missing"),
)


def gnupg_dir(work: Path) -> Path:
    """The GnuPG home of `work`: a short path of its own, because gpg-agent puts its socket
    there and a Unix socket's path must fit in 108 bytes (pytest-xdist's paths do not)."""
    digest = hashlib.sha256(str(work.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"cdnprobe-gpg-{digest}"


def gpg_home(work: Path, name: str = "cdnprobe tests") -> Path:
    """A GnuPG home with one fresh ed25519 signing key (made once per folder)."""
    work.mkdir(parents=True, exist_ok=True)  # where the public key is written
    home = gnupg_dir(work)
    home.mkdir(parents=True, mode=0o700, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    if not list(home.glob("pubring*")):
        subprocess.run(["gpg", "--batch", "--yes", "--passphrase", "", "--quick-gen-key", f"{name} <tests@cdnprobe.invalid>", "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    return home


def stop_gpg_agent(home: Path) -> None:
    """The agent gpg started for this home (and only that one)."""
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=30, check=False
    )


def sign_release(dists: Path, work: Path, detached: bool = False, armor: bool = True) -> Path:
    """Clear-signs dists/Release as dists/InRelease (and, with `detached`, Release.gpg) with
    the key of `work`'s GnuPG home; returns the public key (a binary keyring)."""
    home = gpg_home(work)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--yes", "--passphrase", ""]
    subprocess.run([*gpg, "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release")],
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    if detached:
        armored = ["--armor"] if armor else []  # apt 2.x refuses binary Release.gpg
        subprocess.run([*gpg, *armored, "--detach-sign", "-o", str(dists / "Release.gpg"), str(dists / "Release")],
                       env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    key = work / "key.gpg"
    key.write_bytes(
        subprocess.run(["gpg", "--export"], env=env, check=True, capture_output=True).stdout
    )
    return key


def publish_signed(work: Path, by_hash: bool = False) -> tuple[Path, Path]:
    """One aptly publish (hello-cdn 1.0) signed as a distribution signs: InRelease and
    Release + Release.gpg (`by_hash`: with Acquire-By-Hash). Returns (tree, public key)."""
    tree = _publish_one(work, by_hash)
    key = sign_release(tree / "dists" / SUITE, work, detached=True)
    stop_gpg_agent(gnupg_dir(work))
    return tree, key


def apt_get_update(
    work: Path,
    base_url: str,
    key: Path | None = None,
    *,
    trusted: bool | None = None,
    languages: str = "none",
    by_hash: str | None = None,
    options: dict[str, str] | None = None,
) -> AptRun:
    """The real apt-get update against one edge, with private lists, cache and sources.
    `key`: [signed-by=KEY]; `trusted` (default: without a key): [trusted=yes]; `languages`:
    Acquire::Languages; `by_hash`: Acquire::By-Hash; `options`: more -o NAME=VALUE."""
    for sub in (
        "lists/partial",
        "cache/archives/partial",
        "etc/sources.list.d",
        "etc/preferences.d",
    ):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "status").write_text("")
    flags = ["arch=amd64"]
    if key is not None:
        flags.append(f"signed-by={key}")
    if trusted if trusted is not None else key is None:
        flags.append("trusted=yes")
    (work / "sources.list").write_text(f"deb [{' '.join(flags)}] {base_url} {SUITE} main\n")
    settings: dict[str, object] = {
        "Dir::Etc::sourcelist": work / "sources.list",
        "Dir::Etc::sourceparts": work / "etc/sources.list.d",
        "Dir::Etc::preferencesparts": work / "etc/preferences.d",
        "Dir::State::Lists": work / "lists",
        "Dir::State::status": work / "status",
        "Dir::Cache": work / "cache",
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root",
        "APT::Architecture": "amd64",
        "Acquire::Languages": languages,
        "Acquire::Retries": "0",
        "Acquire::http::Proxy": "false",
        # apt's defaults, whatever this machine's apt.conf.d says (some images turn them off)
        "Acquire::Check-Valid-Until": "true",
        "Acquire::Check-Date": "true",
        "Acquire::Max-FutureTime": "10",
        "Acquire::By-Hash": by_hash or "yes",
        **(options or {}),
    }
    languages_list = settings.pop("Acquire::Languages")
    # APT_CONFIG is read before apt.conf.d (apt-pkg/init.cc pkgInitConfig): pointing
    # Dir::Etc::parts at an empty folder leaves apt with its built-in defaults, whatever this
    # machine's apt.conf.d says (e.g. a list Acquire::Languages:: "none" no -o can clear)
    (work / "etc" / "apt.conf.d").mkdir(parents=True, exist_ok=True)
    listed = " ".join(f'"{x}";' for x in str(languages_list).split(","))
    (work / "apt.conf").write_text(
        f'Dir::Etc::parts "{work / "etc" / "apt.conf.d"}";\nDir::Etc::main "/dev/null";\n'
        f"Acquire::Languages {{ {listed} }};\n"
    )
    argv = ["apt-get", "update", "-q"] + [f"-o{k}={v}" for k, v in settings.items()]
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANGUAGE": "", "APT_CONFIG": str(work / "apt.conf")}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=env)
    output = proc.stdout + proc.stderr
    return AptRun(
        proc.returncode == 0 and "E: " not in output and "W: Failed" not in output, output
    )
