"""Verified downloads into the cache: a file is usable only once its size and sha256 match the registry.

A download streams into a temporary file beside its target and is moved into place only after the check, so the
cache never holds a partial or tampered file. Truncated transfers, dropped connections and server errors
(5xx, 429) are retried with exponential back-off; a complete file with the wrong hash is refused at once (a retry
would fetch the same bytes) and the next URL is tried. urllib follows redirects. Archives are unpacked with
tarfile's "data" filter, which refuses members that would land outside the target folder (absolute paths, `..`,
links pointing out), into a temporary folder renamed into place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from tqdm import tqdm

from kws_zoo.core.errors import DownloadError

CHUNK = 1 << 16


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # per URL
    first_delay_s: float = 1.0  # then doubled after each failed attempt
    timeout_s: float = 30.0


# What one attempt at one URL ended in: the file is in place, another attempt may work, or this URL will not
# serve the file (missing, refused, wrong bytes) and the next one is tried.
DONE, RETRY, NEXT_URL = "done", "retry", "next url"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_verified(path: str, sha256: str, size: int) -> bool:
    return os.path.isfile(path) and os.path.getsize(path) == size and sha256_of(path) == sha256


def fetch_verified(urls: Sequence[str], dest: str, sha256: str, size: int, policy: RetryPolicy = RetryPolicy(),
                   progress: bool = True) -> str:
    """`dest` holding exactly the registered bytes: from the cache when already there (no network), else from
    the first URL that serves them. Raises DownloadError naming every URL's failure; nothing is left at `dest`."""
    if is_verified(dest, sha256, size):
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    failures = []
    for url in urls:
        delay = policy.first_delay_s
        for attempt in range(1, policy.attempts + 1):
            outcome, problem = _download_once(url, dest, sha256, size, policy.timeout_s, progress)
            if outcome == DONE:
                return dest
            if outcome == NEXT_URL:
                failures.append(f"{url}: {problem}")
                break
            failures.append(f"{url} (attempt {attempt} of {policy.attempts}): {problem}")
            if attempt < policy.attempts:
                time.sleep(delay)
                delay *= 2
    tried = "\n  ".join(failures) or "no URL to try"
    raise DownloadError(f"{os.path.basename(dest)}: not downloaded, nothing cached:\n  {tried}")


def _download_once(url: str, dest: str, sha256: str, size: int, timeout_s: float,
                   progress: bool) -> tuple[str, str]:
    """(DONE, "") with `dest` in place, or (RETRY or NEXT_URL, what went wrong) with nothing left behind."""
    tmp = f"{dest}.partial{os.getpid()}"
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out, \
                tqdm(total=size, unit="B", unit_scale=True, desc=os.path.basename(dest), leave=False,
                     disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                received += len(block)
                if received > size:
                    return NEXT_URL, f"more than the registered {size:,} bytes"
                digest.update(block)
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if received < size:
            return RETRY, f"truncated: {received:,} of {size:,} bytes"
        if digest.hexdigest() != sha256:
            return NEXT_URL, (f"sha256 {digest.hexdigest()} is not the registered {sha256} (tampered or replaced "
                              "file): refused")
        os.replace(tmp, dest)
        return DONE, ""
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            return RETRY, f"server error HTTP {err.code}"
        return NEXT_URL, f"HTTP {err.code} {err.reason}"
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        return RETRY, f"transfer failed after {received:,} bytes ({getattr(err, 'reason', err)})"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def extract_archive(archive: str, target: str) -> str:
    """Unpacks a .tar.gz into `target` (created whole or not at all); members escaping it raise DownloadError."""
    if os.path.isdir(target):
        return target
    tmp = f"{target}.partial{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                problem = _member_problem(member)
                if problem:
                    raise DownloadError(f"{archive}: member {member.name!r} refused ({problem}); nothing extracted")
            tar.extractall(tmp, filter="data")
        os.replace(tmp, target)
    except tarfile.FilterError as err:
        raise DownloadError(f"{archive}: member {err.tarinfo.name!r} refused ({err}); nothing extracted") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive}: not a readable .tar.gz archive ({err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Release archives hold relative paths of regular files and folders only: anything else is refused outright,
    not rewritten (the "data" filter alone would strip a leading '/' and extract the member inside the target)."""
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith("/") or ".." in parts:
        return "outside the target folder"
    if not (member.isfile() or member.isdir()):
        return "a link or special file"
    return None
