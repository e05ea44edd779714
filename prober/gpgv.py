"""OpenPGP signatures checked as apt checks them: `gpgv --keyring FILE` (methods/gpgv.cc,
apt-pkg/contrib/gpgv.cc ExecGPGV), on an InRelease (clearsigned) or a Release with its
Release.gpg (detached). I/O (a subprocess, temporary files): the kinds call it, validators
only see the typed result. Bounded in time, temporary files always removed, never raises."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prober.validators.apt import Signature

TIMEOUT_S = 10.0
ARMOR = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@dataclass(frozen=True, slots=True)
class GpgvResult:
    signature: Signature
    reason: str  # gpgv's one line (or why gpgv could not be asked)


async def verify_clearsigned(keyring: str, data: bytes, timeout_s: float = TIMEOUT_S) -> GpgvResult:
    """An InRelease against the keyring."""
    with tempfile.TemporaryDirectory(prefix="cdnprobe-gpgv-") as work:
        files = await asyncio.to_thread(_stage, work, {"InRelease": data})
        return await _verify(keyring, work, files, timeout_s)


async def verify_detached(
    keyring: str, data: bytes, signature: bytes, timeout_s: float = TIMEOUT_S
) -> GpgvResult:
    """A Release and its Release.gpg against the keyring."""
    with tempfile.TemporaryDirectory(prefix="cdnprobe-gpgv-") as work:
        staged = {"Release.gpg": signature, "Release": data}  # gpgv SIGFILE DATAFILE
        files = await asyncio.to_thread(_stage, work, staged)
        return await _verify(keyring, work, files, timeout_s)


def _stage(work: str, files: dict[str, bytes]) -> list[str]:
    for name, data in files.items():
        Path(work, name).write_bytes(data)
    return [str(Path(work, name)) for name in files]


async def _verify(keyring: str, work: str, files: list[str], timeout_s: float) -> GpgvResult:
    # TimeoutError is an OSError: caught first
    try:
        ring = await _binary_keyring(keyring, work, timeout_s)
    except TimeoutError:
        return GpgvResult(Signature.ERROR, f"gpg --dearmor took longer than {timeout_s:g}s")
    except OSError as exc:
        return GpgvResult(Signature.ERROR, f"keyring {keyring}: {exc.strerror or exc}")
    argv = ["gpgv", "--status-fd", "1", "--homedir", work, "--keyring", ring]
    argv += files
    try:
        code, out, err = await _run(argv, timeout_s)
    except TimeoutError:
        return GpgvResult(Signature.ERROR, f"gpgv took longer than {timeout_s:g}s")
    except OSError as exc:
        return GpgvResult(Signature.ERROR, f"gpgv: {exc.strerror or exc}")
    return classify(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def classify(code: int, status: str, stderr: str) -> GpgvResult:
    """gpgv's status lines as methods/gpgv.cc GPGVMethod::VerifyGetSigners reads them:
    NODATA (no signature at all: a portal page, a plain file), BADSIG, NO_PUBKEY/ERRSIG,
    GOODSIG + VALIDSIG with exit 0. Anything else is an error with gpgv's last line."""
    tags = {line.split()[1] for line in status.splitlines() if line.startswith("[GNUPG:] ")}
    last = next((x for x in reversed(stderr.strip().splitlines()) if x.strip()), "")
    if "NODATA" in tags and "GOODSIG" not in tags:
        return GpgvResult(Signature.BAD, "Clearsigned file isn't valid, got 'NODATA'")
    if "BADSIG" in tags:
        return GpgvResult(Signature.BAD, last or "BADSIG")
    if "NO_PUBKEY" in tags or ("ERRSIG" in tags and "GOODSIG" not in tags):
        return GpgvResult(Signature.NO_PUBKEY, last or "NO_PUBKEY")
    if code == 0 and "GOODSIG" in tags and "VALIDSIG" in tags:
        return GpgvResult(Signature.VERIFIED, last or "Good signature")
    return GpgvResult(Signature.ERROR, last or f"gpgv exited {code}")


async def _binary_keyring(keyring: str, work: str, timeout_s: float) -> str:
    """gpgv reads binary keyrings only: an armored key file is dearmored first, as apt
    does for signed-by files ending in .asc (apt-key / apt-pkg/contrib/gpgv.cc)."""
    absolute, head = await asyncio.to_thread(_head, keyring)
    if ARMOR not in head:
        return absolute  # absolute: gpgv looks a bare name up inside its homedir
    binary = str(Path(work, "keyring.gpg"))
    argv = ["gpg", "--batch", "--homedir", work, "--dearmor", "--output", binary, keyring]
    code, _out, err = await _run(argv, timeout_s)
    if code != 0:
        line = err.decode("utf-8", "replace").strip().splitlines()
        raise OSError(0, line[-1] if line else "gpg --dearmor failed")
    return binary


def _head(path: str) -> tuple[str, bytes]:
    with open(path, "rb") as handle:
        return str(Path(path).absolute()), handle.read(4096)


async def _run(argv: list[str], timeout_s: float) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out, err
