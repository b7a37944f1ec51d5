"""Fetching the scripts of git and url steps into a local cache.

Pure functions: callers pass the configuration in (the allow-list ``OMEGAOPS_SCRIPT_SOURCES``, the cache
directory, limits). Every failure is a ``SourceError`` whose message is one line, fit for a task's failure
detail.

The cache is keyed by what cannot change: a git checkout by repository and commit, a url script by its
sha256. Entries appear with an atomic rename, so an entry that exists is complete and is used without any
network access.
"""

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

GIT_SCHEMES = {"https", "http", "file", "ssh", "git"}
URL_SCHEMES = {"https", "http", "file"}
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{40}$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# what git refuses in a ref name (git check-ref-format), and wildmatch's specials, which ls-remote patterns use
BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
# proxies and the ssh agent are how an operator reaches private sources; nothing else of ours leaks to git
PASSED_ENV = (
    *("HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"),
    *("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"),
)


class SourceError(Exception):
    """A script could not be fetched; ``str()`` is a one-line reason."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def check_allowed(url: str, allowed: list[str]) -> None:
    """Raise ``SourceError`` unless ``url`` has a known scheme and lies under one of the ``allowed`` prefixes."""
    if not isinstance(url, str) or not url or any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise SourceError(f"{url!r} is not a valid URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in GIT_SCHEMES:
        schemes = ", ".join(sorted(GIT_SCHEMES))
        raise SourceError(f"{url!r}: scheme {scheme or '(none)'!r} is not allowed (allowed: {schemes})")
    # a prefix check means nothing once the path may climb out of it; urllib's file handler unquotes %2e%2e
    if ".." in unquote(urlsplit(url).path).split("/"):
        raise SourceError(f"{url!r} must not contain '..'")
    for prefix in allowed:
        if prefix and _under(url, prefix):
            return
    raise SourceError(f"{url} is not in the allowed script sources (OMEGAOPS_SCRIPT_SOURCES)")


def _under(url: str, prefix: str) -> bool:
    # a plain startswith would let https://host/ops allow https://host/ops-evil or https://host/ops@evil.com
    if url == prefix or prefix.endswith("/"):
        return url.startswith(prefix)
    if not url.startswith(prefix):
        return False
    rest = url[len(prefix) :]
    return rest.startswith("/") or rest == ".git"


def resolve_git_ref(url: str, ref: str, allowed: list[str], timeout: float = 60) -> str:
    """Return the 40-hex commit that ``ref`` (a branch, tag or full commit sha) names in the repository now."""
    check_allowed(url, allowed)
    if not isinstance(ref, str) or not ref:
        raise SourceError("the git ref is empty")
    if COMMIT_RE.match(ref):
        return ref.lower()
    if ref.startswith(("-", "/")) or ref.endswith(("/", ".", ".lock")) or BAD_REF_RE.search(ref):
        raise SourceError(f"{ref!r} is not a valid git ref")
    # ls-remote matches patterns against the tail of each ref name, so "main" also finds "refs/heads/x/main":
    # ask for the candidates, then pick by git's own precedence. An annotated tag's commit is its ^{} line.
    output = _git(["ls-remote", "--", url, ref, f"{ref}^{{}}"], url, "git ls-remote", timeout)
    refs = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if COMMIT_RE.match(sha):
            refs[name] = sha.lower()
    for name in (ref, f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"):
        sha = refs.get(f"{name}^{{}}") or refs.get(name)
        if sha:
            return sha
    hint = " (give a commit as its full 40-hex sha)" if re.match(r"^[0-9a-fA-F]{4,39}$", ref) else ""
    raise SourceError(f"ref {ref!r} not found in {url}{hint}")


def git_checkout(url: str, commit: str, cache_dir: Path, allowed: list[str], timeout: float = 300) -> Path:
    """Return a directory holding the repository's tree at ``commit``, cloning it unless it is cached."""
    check_allowed(url, allowed)
    if not isinstance(commit, str) or not COMMIT_RE.match(commit):
        raise SourceError(f"{commit!r} is not a full 40-hex commit sha")
    commit = commit.lower()
    target = Path(cache_dir) / "git" / hashlib.sha256(url.encode()).hexdigest()[:16] / commit
    if target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=target.parent))
    except OSError as exc:
        raise SourceError(f"cannot create the git cache under {cache_dir}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + timeout

    def git(args, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError(f"{what} timed out after {timeout:g}s")
        return _git(args, url, what, remaining, timeout_label=timeout)

    try:
        git(["clone", "--no-checkout", "--quiet", "--", url, str(tmp)], "git clone")
        if not _has_commit(tmp, commit):
            # a commit no branch or tag reaches any more; servers that allow fetching by sha still serve it
            git(["-C", str(tmp), "fetch", "--quiet", "origin", commit], "git fetch")
        git(["-C", str(tmp), "checkout", "--quiet", "--detach", commit], "git checkout")
        head = git(["-C", str(tmp), "rev-parse", "HEAD"], "git rev-parse").strip()
        if head != commit:
            raise SourceError(f"checkout of {url} gave commit {head}, expected {commit}")
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            # another worker checked out the same commit first; theirs is just as good
        return target
    except OSError as exc:
        raise SourceError(f"cannot store the checkout of {url} in {target.parent}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _has_commit(repo: Path, commit: str) -> bool:
    try:
        _git(["-C", str(repo), "cat-file", "-e", f"{commit}^{{commit}}"], "", "git cat-file", 60)
    except SourceError:
        return False
    return True


def script_in_checkout(checkout: Path, path: str) -> Path:
    """Return the file ``path`` inside ``checkout``, refusing paths and symlinks that lead outside it."""
    checkout = Path(checkout)
    if not isinstance(path, str) or not path or "\x00" in path:
        raise SourceError(f"{path!r} is not a valid path")
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise SourceError(f"{path!r} must be a relative path inside the repository")
    base = checkout.resolve()
    real = (base / path).resolve()
    if real != base and base not in real.parents:
        raise SourceError(f"{path!r} leads outside the repository")
    if not real.is_file():
        raise SourceError(f"{path!r} not found at commit {checkout.name}")
    return real


def fetch_url(
    url: str, sha256: str, cache_dir: Path, allowed: list[str], max_bytes: int = 1_048_576, timeout: float = 60
) -> Path:
    """Return a cached file whose content has exactly ``sha256``, fetching ``url`` unless it is cached."""
    check_allowed(url, allowed)
    if urlsplit(url).scheme.lower() not in URL_SCHEMES:
        raise SourceError(f"{url!r}: a url script must be http(s):// or file://")
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256):
        raise SourceError(f"{sha256!r} is not a sha256 (64 hex digits)")
    sha256 = sha256.lower()
    directory = Path(cache_dir) / "url"
    target = directory / sha256
    if target.is_file() and _file_sha256(target) == sha256:
        return target
    data = _download(url, allowed, max_bytes, timeout)
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise SourceError(f"sha256 mismatch: expected {sha256}, got {got}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:12]}-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise SourceError(f"cannot store {url} in {directory}: {exc.strerror or exc}") from None
    return target


def _download(url: str, allowed: list[str], max_bytes: int, timeout: float) -> bytes:
    opener = urllib.request.build_opener(_AllowedRedirects(allowed))
    try:
        with opener.open(url, timeout=timeout) as response:  # noqa: S310 -- scheme checked against URL_SCHEMES
            data = b""
            while len(data) <= max_bytes:
                chunk = response.read(max_bytes + 1 - len(data))
                if not chunk:
                    break
                data += chunk
    except SourceError:
        raise
    except urllib.error.HTTPError as exc:
        raise SourceError(f"fetching {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise SourceError(f"fetching {url} timed out after {timeout:g}s") from None
        reason = getattr(reason, "strerror", None) or reason
        raise SourceError(f"fetching {url} failed: {reason}") from None
    except TimeoutError:
        raise SourceError(f"fetching {url} timed out after {timeout:g}s") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"fetching {url} failed: {exc}") from None
    if len(data) > max_bytes:
        raise SourceError(f"{url} is larger than {max_bytes} bytes")
    return data


class _AllowedRedirects(urllib.request.HTTPRedirectHandler):
    # without this a redirect would take the fetch to any host, around the allow-list
    def __init__(self, allowed: list[str]):
        self.allowed = allowed

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            check_allowed(newurl, self.allowed)
        except SourceError as exc:
            raise SourceError(f"{req.full_url} redirects to {newurl}, which is not allowed: {exc}") from None
        if urlsplit(newurl).scheme.lower() not in {"http", "https"}:
            raise SourceError(f"{req.full_url} redirects to {newurl}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    env.update(
        PATH=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        HOME=env.get("HOME") or tempfile.gettempdir(),
        LC_ALL="C",
        # a password prompt must fail now, not hang until the timeout; ssh has no terminal to prompt on either,
        # as git runs in a session of its own
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/true",
        SSH_ASKPASS="/bin/true",
    )
    return env


def _git(args: list[str], url: str, what: str, timeout: float, timeout_label: float | None = None) -> str:
    """Run git with ``args``; return its stdout or raise ``SourceError`` with git's last stderr line."""
    scheme = urlsplit(url).scheme.lower() if url else ""
    config = ["-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false"]
    if scheme in GIT_SCHEMES:
        # only the transport the checked URL names: no ext::, no file:// sneaking in through a redirect
        config += ["-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always"]
    argv = ["git", *config, *args]
    try:
        process = subprocess.Popen(  # noqa: S603 -- argv is a list: no shell ever sees the URL or ref
            argv,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout also reaches ssh and git-remote-*
            close_fds=True,
        )
    except OSError as exc:
        raise SourceError(f"cannot run git: {exc.strerror or exc}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate()
        raise SourceError(f"{what} timed out after {timeout_label or timeout:g}s") from None
    if process.returncode != 0:
        lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise SourceError(f"{what} failed: {lines[-1]}" if lines else f"{what} exited with code {process.returncode}")
    return stdout.decode("utf-8", "replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
