"""Fetching git and url step scripts: real git repositories in tmp_path, file:// and local http URLs."""

import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.ops import sources
from app.ops.sources import (
    SourceError,
    check_allowed,
    fetch_url,
    git_checkout,
    resolve_git_ref,
    script_in_checkout,
)

# the developer's own git configuration (signing, hooks, default branch) must not shape the test repositories
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def run_git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def commit_file(repo: Path, path: str, text: str, message: str) -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD")


@dataclass
class Origin:
    path: Path
    url: str
    allowed: list[str]
    first: str  # annotated tag v1
    second: str  # main, lightweight tag "light"; has the symlinks
    feature: str  # branches feature and x/main
    tag_object: str


@pytest.fixture
def origin(tmp_path) -> Origin:
    repo = tmp_path / "origin"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    first = commit_file(repo, "deploy/install.sh", "echo one\n", "first")
    run_git(repo, "tag", "-a", "v1", "-m", "release 1")
    (repo / "inside.sh").symlink_to("deploy/install.sh")
    (repo / "escape.sh").symlink_to("/etc/passwd")
    (repo / "climb.sh").symlink_to("../../../../../../../../etc/passwd")
    second = commit_file(repo, "deploy/install.sh", "echo two\n", "second")
    run_git(repo, "tag", "light")
    run_git(repo, "checkout", "-q", "-b", "feature", first)
    feature = commit_file(repo, "deploy/install.sh", "echo feature\n", "feature")
    # ls-remote finds refs by their tail, so this branch also answers to "main"
    run_git(repo, "branch", "x/main")
    run_git(repo, "checkout", "-q", "main")
    url = f"file://{repo}"
    return Origin(repo, url, [url], first, second, feature, run_git(repo, "rev-parse", "v1"))


def no_temp_dirs_left(cache: Path) -> bool:
    return not any(path.name.startswith(".") for path in (cache / "git").glob("*/*"))


# -- allow-list


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/ops",
        "https://git.example.com/ops/scripts.git",
        "https://git.example.com/ops.git",
        "ssh://git@git.example.com/ops/scripts.git",
    ],
)
def test_check_allowed_accepts_urls_under_a_prefix(url):
    check_allowed(url, ["https://git.example.com/ops", "ssh://git@git.example.com/ops/"])


def test_check_allowed_refuses_url_outside_every_prefix_and_names_the_setting():
    with pytest.raises(SourceError) as error:
        check_allowed("https://elsewhere.example.com/ops/x.sh", ["https://git.example.com/ops"])
    assert str(error.value) == (
        "https://elsewhere.example.com/ops/x.sh is not in the allowed script sources (OMEGAOPS_SCRIPT_SOURCES)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/ops-evil/x.git",
        "https://git.example.com/opsx",
        "https://git.example.com/ops.gitx",
        "https://git.example.com/ops@evil.example.com/x.git",
        "https://git.example.com/ops.git/../../evil/x.git",
    ],
)
def test_check_allowed_prefix_matches_only_at_a_path_boundary(url):
    with pytest.raises(SourceError, match="not in the allowed script sources|'\\.\\.'"):
        check_allowed(url, ["https://git.example.com/ops"])


def test_check_allowed_prefix_ending_in_slash_allows_anything_below_it():
    check_allowed("https://git.example.com/ops/any/where.sh", ["https://git.example.com/ops/"])
    with pytest.raises(SourceError):
        check_allowed("https://git.example.com/ops", ["https://git.example.com/ops/"])


def test_check_allowed_refuses_everything_when_the_list_is_empty():
    with pytest.raises(SourceError, match="not in the allowed script sources"):
        check_allowed("https://git.example.com/ops/x.git", [])
    with pytest.raises(SourceError, match="not in the allowed script sources"):
        check_allowed("https://git.example.com/ops/x.git", [""])


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "ftp://git.example.com/ops/x.sh",
        "data:text/plain,echo",
        "git@git.example.com:ops/x.git",
        "-uhttps://git.example.com/ops",
    ],
)
def test_check_allowed_refuses_other_schemes_even_when_listed(url):
    with pytest.raises(SourceError, match="not allowed|not a valid URL"):
        check_allowed(url, [url, ""])


@pytest.mark.parametrize("path", ["/srv/scripts/../../etc/passwd", "/srv/scripts/%2e%2e/%2E%2E/etc/passwd"])
def test_check_allowed_refuses_dot_dot_that_climbs_out_of_the_prefix(path):
    with pytest.raises(SourceError, match="must not contain"):
        check_allowed(f"file://{path}", ["file:///srv/scripts/"])


# -- resolving refs


def test_resolve_branch_gives_its_commit(origin):
    assert resolve_git_ref(origin.url, "main", origin.allowed) == origin.second
    assert resolve_git_ref(origin.url, "feature", origin.allowed) == origin.feature
    assert resolve_git_ref(origin.url, "refs/heads/main", origin.allowed) == origin.second


def test_resolve_branch_is_not_confused_by_a_ref_with_the_same_tail(origin):
    assert resolve_git_ref(origin.url, "main", origin.allowed) == origin.second
    assert resolve_git_ref(origin.url, "x/main", origin.allowed) == origin.feature


def test_resolve_lightweight_tag_gives_its_commit(origin):
    assert resolve_git_ref(origin.url, "light", origin.allowed) == origin.second


def test_resolve_annotated_tag_gives_the_peeled_commit_not_the_tag_object(origin):
    assert origin.tag_object != origin.first
    assert resolve_git_ref(origin.url, "v1", origin.allowed) == origin.first
    assert resolve_git_ref(origin.url, "refs/tags/v1", origin.allowed) == origin.first


def test_resolve_full_sha_needs_no_remote(origin):
    shutil.rmtree(origin.path)
    assert resolve_git_ref(origin.url, origin.first.upper(), origin.allowed) == origin.first


def test_resolve_full_sha_still_checks_the_allow_list(origin):
    with pytest.raises(SourceError, match="not in the allowed script sources"):
        resolve_git_ref(origin.url, origin.first, [])


def test_resolve_unknown_ref_names_the_ref_and_the_url(origin):
    with pytest.raises(SourceError) as error:
        resolve_git_ref(origin.url, "nope", origin.allowed)
    assert str(error.value) == f"ref 'nope' not found in {origin.url}"


def test_resolve_short_sha_explains_that_a_full_sha_is_needed(origin):
    with pytest.raises(SourceError, match="full 40-hex sha"):
        resolve_git_ref(origin.url, origin.first[:8], origin.allowed)


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/pwned", "main..feature", "ma*", "main^{}", ""])
def test_resolve_refuses_refs_that_are_not_ref_names(origin, ref):
    with pytest.raises(SourceError, match="not a valid git ref|empty"):
        resolve_git_ref(origin.url, ref, origin.allowed)


def test_resolve_missing_repository_reports_gits_last_error_line(origin, tmp_path):
    url = f"file://{tmp_path}/origin-gone"
    with pytest.raises(SourceError) as error:
        resolve_git_ref(url, "main", [url])
    message = str(error.value)
    assert message.startswith("git ls-remote failed: ")
    assert "\n" not in message
    assert "Traceback" not in message


def test_resolve_stops_at_the_timeout_when_the_server_never_answers(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.create_server(("127.0.0.1", 0)) as server:  # listens, never accepts: connects, then silence
        url = f"http://127.0.0.1:{server.getsockname()[1]}/ops.git"
        with pytest.raises(SourceError) as error:
            resolve_git_ref(url, "main", [url], timeout=1)
    assert str(error.value) == "git ls-remote timed out after 1s"


# -- checkouts


def test_checkout_holds_the_tree_at_the_commit(origin, tmp_path):
    checkout = git_checkout(origin.url, origin.second, tmp_path / "cache", origin.allowed)
    assert (checkout / "deploy/install.sh").read_text() == "echo two\n"
    digest = hashlib.sha256(origin.url.encode()).hexdigest()[:16]
    assert checkout == tmp_path / "cache" / "git" / digest / origin.second
    assert no_temp_dirs_left(tmp_path / "cache")


def test_checkout_of_an_older_commit_gives_the_older_content(origin, tmp_path):
    checkout = git_checkout(origin.url, origin.first, tmp_path / "cache", origin.allowed)
    assert (checkout / "deploy/install.sh").read_text() == "echo one\n"
    assert not (checkout / "inside.sh").exists()


def test_checkout_is_cached_by_commit_and_needs_no_remote_the_second_time(origin, tmp_path):
    first = git_checkout(origin.url, origin.second, tmp_path / "cache", origin.allowed)
    shutil.rmtree(origin.path)
    again = git_checkout(origin.url, origin.second.upper(), tmp_path / "cache", origin.allowed)
    assert again == first
    assert (again / "deploy/install.sh").read_text() == "echo two\n"


def test_checkout_of_an_unknown_commit_fails_and_leaves_nothing_in_the_cache(origin, tmp_path):
    with pytest.raises(SourceError, match="^git fetch failed: "):
        git_checkout(origin.url, "0" * 40, tmp_path / "cache", origin.allowed)
    assert list((tmp_path / "cache" / "git").glob("*/*")) == []


@pytest.mark.parametrize("commit", ["main", "../../../../tmp/x", "0" * 39 + "/"])
def test_checkout_refuses_anything_but_a_full_commit_sha(origin, tmp_path, commit):
    with pytest.raises(SourceError, match="is not a full 40-hex commit sha"):
        git_checkout(origin.url, commit, tmp_path / "cache", origin.allowed)


def test_checkout_refuses_a_repository_outside_the_allow_list(origin, tmp_path):
    with pytest.raises(SourceError, match="not in the allowed script sources"):
        git_checkout(origin.url, origin.second, tmp_path / "cache", ["file:///elsewhere"])
    assert not (tmp_path / "cache").exists()


def test_checkout_ignores_the_callers_git_environment(origin, tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "not-a-repo"))
    checkout = git_checkout(origin.url, origin.second, tmp_path / "cache", origin.allowed)
    assert (checkout / "deploy/install.sh").read_text() == "echo two\n"


def test_two_checkouts_of_the_same_commit_at_once_both_succeed(origin, tmp_path):
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(git_checkout, origin.url, origin.second, cache, origin.allowed) for _ in range(2)]
        results = [future.result() for future in futures]
    assert results[0] == results[1]
    assert (results[0] / "deploy/install.sh").read_text() == "echo two\n"
    assert no_temp_dirs_left(cache)


def test_checkout_that_loses_the_race_uses_the_winners_copy(origin, tmp_path, monkeypatch):
    winner = git_checkout(origin.url, origin.second, tmp_path / "winner", origin.allowed)
    real_rename = os.rename

    def rename_after_another_worker(src, dst):
        shutil.copytree(winner, dst, symlinks=True)
        (Path(dst) / "winner").write_text("")
        real_rename(src, dst)

    monkeypatch.setattr(sources.os, "rename", rename_after_another_worker)
    checkout = git_checkout(origin.url, origin.second, tmp_path / "cache", origin.allowed)
    assert (checkout / "winner").exists()
    assert no_temp_dirs_left(tmp_path / "cache")


# -- scripts inside a checkout


@pytest.fixture
def checkout(origin, tmp_path) -> Path:
    return git_checkout(origin.url, origin.second, tmp_path / "cache", origin.allowed)


def test_script_in_checkout_gives_the_file(checkout):
    assert script_in_checkout(checkout, "deploy/install.sh").read_text() == "echo two\n"
    assert script_in_checkout(checkout, "./deploy//install.sh") == checkout.resolve() / "deploy/install.sh"


def test_script_in_checkout_follows_a_symlink_that_stays_inside(checkout):
    assert script_in_checkout(checkout, "inside.sh").read_text() == "echo two\n"


@pytest.mark.parametrize("path", ["../x", "deploy/../../x", "/etc/passwd"])
def test_script_in_checkout_refuses_paths_outside_the_repository(checkout, path):
    with pytest.raises(SourceError, match="must be a relative path inside the repository"):
        script_in_checkout(checkout, path)


@pytest.mark.parametrize("path", ["escape.sh", "climb.sh"])
def test_script_in_checkout_refuses_a_symlink_pointing_outside(checkout, path):
    with pytest.raises(SourceError, match="leads outside the repository"):
        script_in_checkout(checkout, path)


def test_script_in_checkout_reports_a_missing_file_with_the_commit(checkout, origin):
    with pytest.raises(SourceError) as error:
        script_in_checkout(checkout, "deploy/missing.sh")
    assert str(error.value) == f"'deploy/missing.sh' not found at commit {origin.second}"
    with pytest.raises(SourceError, match="not found at commit"):
        script_in_checkout(checkout, "deploy")


# -- url scripts


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "served" / "install.sh"
    path.parent.mkdir()
    path.write_bytes(b"#!/bin/sh\necho hello\n")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_url_file_gives_the_content_cached_by_sha256(script, tmp_path):
    digest = sha(script.read_bytes())
    path = fetch_url(f"file://{script}", digest.upper(), tmp_path / "cache", [f"file://{script.parent}/"])
    assert path == tmp_path / "cache" / "url" / digest
    assert path.read_bytes() == script.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [digest]


def test_fetch_url_refuses_content_with_another_sha256(script, tmp_path):
    expected = "ab" * 32
    with pytest.raises(SourceError) as error:
        fetch_url(f"file://{script}", expected, tmp_path / "cache", [f"file://{script}"])
    assert str(error.value) == f"sha256 mismatch: expected {expected}, got {sha(script.read_bytes())}"
    assert not (tmp_path / "cache" / "url" / expected).exists()


def test_fetch_url_refuses_a_file_larger_than_the_limit(script, tmp_path):
    size = len(script.read_bytes())
    digest = sha(script.read_bytes())
    with pytest.raises(SourceError, match=f"is larger than {size - 1} bytes"):
        fetch_url(f"file://{script}", digest, tmp_path / "cache", [f"file://{script}"], max_bytes=size - 1)
    assert fetch_url(f"file://{script}", digest, tmp_path / "cache", [f"file://{script}"], max_bytes=size).exists()


def test_fetch_url_uses_the_cache_without_the_source(script, tmp_path):
    data = script.read_bytes()
    first = fetch_url(f"file://{script}", sha(data), tmp_path / "cache", [f"file://{script}"])
    script.unlink()
    assert fetch_url(f"file://{script}", sha(data), tmp_path / "cache", [f"file://{script}"]) == first
    assert first.read_bytes() == data


def test_fetch_url_fetches_again_when_the_cached_file_is_corrupt(script, tmp_path):
    data = script.read_bytes()
    cached = tmp_path / "cache" / "url" / sha(data)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    assert fetch_url(f"file://{script}", sha(data), tmp_path / "cache", [f"file://{script}"]).read_bytes() == data


def test_fetch_url_refuses_a_url_outside_the_allow_list(script, tmp_path):
    with pytest.raises(SourceError, match="not in the allowed script sources"):
        fetch_url(f"file://{script}", sha(script.read_bytes()), tmp_path / "cache", [f"file://{tmp_path}/other/"])


def test_fetch_url_refuses_git_only_schemes(tmp_path):
    url = "ssh://git.example.com/ops/x.sh"
    with pytest.raises(SourceError, match="must be http"):
        fetch_url(url, "ab" * 32, tmp_path / "cache", [url])


def test_fetch_url_reports_a_missing_file_in_one_line(tmp_path):
    url = f"file://{tmp_path}/missing.sh"
    with pytest.raises(SourceError) as error:
        fetch_url(url, "ab" * 32, tmp_path / "cache", [url])
    assert str(error.value) == f"fetching {url} failed: No such file or directory"


class ScriptHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/ok/install.sh":
            body = b"echo served\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/ok/moved.sh":
            self.send_response(302)
            self.send_header("Location", "/ok/install.sh")
            self.end_headers()
        elif self.path == "/ok/away.sh":
            self.send_response(302)
            self.send_header("Location", "/evil/install.sh")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_base(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_fetch_url_over_http_follows_redirects_inside_the_allow_list(http_base, tmp_path):
    path = fetch_url(f"{http_base}/ok/moved.sh", sha(b"echo served\n"), tmp_path / "cache", [f"{http_base}/ok/"])
    assert path.read_bytes() == b"echo served\n"


def test_fetch_url_refuses_a_redirect_outside_the_allow_list(http_base, tmp_path):
    with pytest.raises(SourceError, match="redirects to .*/evil/install.sh, which is not allowed"):
        fetch_url(f"{http_base}/ok/away.sh", sha(b"echo served\n"), tmp_path / "cache", [f"{http_base}/ok/"])


def test_fetch_url_reports_the_http_status(http_base, tmp_path):
    with pytest.raises(SourceError, match="failed: HTTP 404 Not Found$"):
        fetch_url(f"{http_base}/ok/none.sh", "ab" * 32, tmp_path / "cache", [f"{http_base}/ok/"])


def test_fetch_url_stops_at_the_timeout_when_the_server_never_answers(tmp_path, monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/install.sh"
        with pytest.raises(SourceError) as error:
            fetch_url(url, "ab" * 32, tmp_path / "cache", [url], timeout=0.5)
    assert str(error.value) == f"fetching {url} timed out after 0.5s"
