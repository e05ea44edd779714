"""A real APT repository for the tests: small .debs built with dpkg-deb, published twice by
aptly (version 1, then version 2 a second later), and a private, real `apt-get update`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class Published:
    v1: Path  # the public tree of the first publish
    v2: Path  # the public tree after the second


def publish_two_versions(work: Path) -> Published:
    """v1: hello-cdn 1.0; v2 (one second later): hello-cdn 2.0 and world-cdn 1.0."""
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
    return Published(v1, v2)


def publish_by_hash(work: Path) -> Path:
    """One publish with Acquire-By-Hash: yes (aptly -acquire-by-hash); returns the tree."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "aptly.conf"
    config.write_text(json.dumps({"rootDir": str(work / "aptly"), "architectures": ["amd64"]}))
    for args in (
        ["repo", "create", f"-distribution={SUITE}", "-component=main", "cdn"],
        ["repo", "add", "cdn", str(_deb(work, "hello-cdn", "1.0"))],
        ["publish", "repo", "-skip-signing", "-acquire-by-hash", "-architectures=amd64", "cdn"],
    ):
        subprocess.run(
            ["aptly", f"-config={config}", *args], check=True, capture_output=True, timeout=120
        )
    return work / "aptly" / "public"


@dataclass
class AptRun:
    ok: bool
    output: str

    @property
    def failure(self) -> str | None:
        """The kind of failure apt reported, in cdnprobe's words."""
        if "unexpected size" in self.output:
            return "size_mismatch"
        if "Hash Sum mismatch" in self.output:
            return "hash_mismatch"
        if "is expired" in self.output:
            return "expired"
        if "404" in self.output:
            return "missing"
        return None if self.ok else "other"


def sign_release(dists: Path, work: Path) -> Path:
    """Clear-signs dists/Release as dists/InRelease with a fresh key; returns the public key."""
    home = work / "gnupg"
    home.mkdir(parents=True, mode=0o700, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--yes", "--passphrase", ""]
    if not list(home.glob("pubring*")):
        subprocess.run([*gpg, "--quick-gen-key", "cdnprobe tests <tests@cdnprobe.invalid>", "ed25519", "sign", "never"],
                       env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    subprocess.run([*gpg, "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release")],
                   env=env, check=True, capture_output=True, timeout=60)  # fmt: skip
    key = work / "key.gpg"
    key.write_bytes(
        subprocess.run(["gpg", "--export"], env=env, check=True, capture_output=True).stdout
    )
    return key


def apt_get_update(work: Path, base_url: str, key: Path | None = None) -> AptRun:
    """The real apt-get update against one edge, with private lists, cache and sources."""
    for sub in (
        "lists/partial",
        "cache/archives/partial",
        "etc/sources.list.d",
        "etc/preferences.d",
    ):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "status").write_text("")
    trust = f"signed-by={key}" if key else "trusted=yes"
    (work / "sources.list").write_text(f"deb [{trust} arch=amd64] {base_url} {SUITE} main\n")
    options = {
        "Dir::Etc::sourcelist": work / "sources.list",
        "Dir::Etc::sourceparts": work / "etc/sources.list.d",
        "Dir::Etc::preferencesparts": work / "etc/preferences.d",
        "Dir::State::Lists": work / "lists",
        "Dir::State::status": work / "status",
        "Dir::Cache": work / "cache",
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root",
        "APT::Architecture": "amd64",
        "Acquire::Languages": "none",
        "Acquire::Retries": "0",
        "Acquire::http::Proxy": "false",
        # apt's defaults, whatever this machine's apt.conf.d says (some images turn them off)
        "Acquire::Check-Valid-Until": "true",
        "Acquire::Check-Date": "true",
    }
    argv = ["apt-get", "update", "-q"] + [f"-o{k}={v}" for k, v in options.items()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    return AptRun(
        proc.returncode == 0 and "E: " not in output and "W: Failed" not in output, output
    )
