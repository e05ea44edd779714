"""The obvious aiohttp prober, the benchmark's yardstick for `cdnprobe check`: one session, a
semaphore, each edge reached by address with the Host header and SNI set to the name, 64 KiB
chunks into hashlib. It gets the addresses on its command line (no DNS) and prints nothing
but a count, so it does less than `check`; `check` must still beat it.

    python3 -m bench.naive HOST PORT CA_FILE ADDRESS[,ADDRESS...] PATH [PATH...]
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import sys

import aiohttp


async def probe_all(
    host: str, port: int, ca_file: str, addresses: list[str], paths: list[str]
) -> int:
    context = ssl.create_default_context(cafile=ca_file)
    slots = asyncio.Semaphore(64)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:

        async def one(address: str, path: str) -> bool:
            async with slots:
                url = f"https://{address}:{port}{path}"
                headers = {"Host": f"{host}:{port}", "Accept-Encoding": "identity"}
                async with session.get(
                    url, headers=headers, ssl=context, server_hostname=host, allow_redirects=False
                ) as response:
                    digest = hashlib.sha256()
                    async for chunk in response.content.iter_chunked(64 << 10):
                        digest.update(chunk)
                    digest.hexdigest()
                    return response.status == 200

        results = await asyncio.gather(*(one(a, p) for p in paths for a in addresses))
    return sum(results)


def main() -> int:
    host, port, ca_file, addresses, *paths = sys.argv[1:]
    ok = asyncio.run(probe_all(host, int(port), ca_file, addresses.split(","), paths))
    print(ok)
    return 0 if ok == len(paths) * len(addresses.split(",")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
