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


class _Retry(Exception):
    """This attempt failed in a way another attempt at the same URL may not."""


class _BadMember(Exception):
    """An archive member a release never holds."""


class _NextUrl(Exception):
    """This URL will not serve the file (missing, refused, wrong bytes): try the next one."""


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
            try:
                _download_once(url, dest, sha256, size, policy.timeout_s, progress)
                return dest
            except _NextUrl as err:
                failures.append(f"{url}: {err}")
                break
            except _Retry as err:
                failures.append(f"{url} (attempt {attempt} of {policy.attempts}): {err}")
                if attempt < policy.attempts:
                    time.sleep(delay)
                    delay *= 2
    tried = "\n  ".join(failures) or "no URL to try"
    raise DownloadError(f"{os.path.basename(dest)}: not downloaded, nothing cached:\n  {tried}")


def _download_once(url: str, dest: str, sha256: str, size: int, timeout_s: float, progress: bool) -> None:
    tmp = f"{dest}.partial{os.getpid()}"
    digest, received = hashlib.sha256(), 0
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out, \
                    tqdm(total=size, unit="B", unit_scale=True, desc=os.path.basename(dest), leave=False,
                         disable=not progress) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    received += len(block)
                    if received > size:
                        raise _NextUrl(f"more than the registered {size:,} bytes")
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as err:
            if err.code >= 500 or err.code == 429:
                raise _Retry(f"server error HTTP {err.code}") from None
            raise _NextUrl(f"HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            raise _Retry(f"transfer failed after {received:,} bytes ({getattr(err, 'reason', err)})") from None
        if received < size:
            raise _Retry(f"truncated: {received:,} of {size:,} bytes")
        if digest.hexdigest() != sha256:
            raise _NextUrl(f"sha256 {digest.hexdigest()} is not the registered {sha256} (tampered or "
                           "replaced file): refused")
        os.replace(tmp, dest)
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
                _check_member(member)
            tar.extractall(tmp, filter="data")
        os.replace(tmp, target)
    except tarfile.FilterError as err:
        raise DownloadError(f"{archive}: member {err.tarinfo.name!r} refused ({err}); nothing extracted") from None
    except _BadMember as err:
        raise DownloadError(f"{archive}: member {err} refused; nothing extracted") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"{archive}: not a readable .tar.gz archive ({err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_member(member: tarfile.TarInfo) -> None:
    """Release archives hold relative paths of regular files and folders only: anything else is refused outright,
    not rewritten (the "data" filter alone would strip a leading '/' and extract the member inside the target)."""
    parts = member.name.replace("\\", "/").split("/")
    if member.name.startswith("/") or ".." in parts:
        raise _BadMember(f"{member.name!r} (outside the target folder)")
    if not (member.isfile() or member.isdir()):
        raise _BadMember(f"{member.name!r} (a link or special file)")
