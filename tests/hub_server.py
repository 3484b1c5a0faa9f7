"""A small in-memory Hugging Face Hub for tests, speaking the HTTP endpoints ``huggingface_hub`` uses.

It lets the real client (create_repo, create_commit/upload_folder with ``parent_commit``,
create_tag/delete_tag, list_repo_refs, model_info, list_repo_tree, hf_hub_download) run
unmodified against ``http://127.0.0.1:<port>``. Files are uploaded inline (preupload answers
``"regular"``), commits are content-addressed 40-hex ids, branches and tags are pointers.

Fault injection for tests:
- ``hub.tokens``: valid bearer tokens -> user name; writes need a token whose user owns the namespace.
- ``hub.drop_commits_to``: repo ids whose next commit requests are read and then answered by
  closing the connection (a network failure mid-upload).
- ``hub.before_commit``: a callback ``(repo_id) -> None`` run before each commit is applied (to
  slip a concurrent commit in between a client's read and its write).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlparse


#: The write token the test fixtures give the ``acme`` namespace.
TOKEN = "hf_test_acme_write"


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        rev = unquote(rev)
        oid = self.branches.get(rev) or self.tags.get(rev) or (rev if rev in self.commits else None)
        if oid is None and len(rev) >= 7:
            matches = [c for c in self.commits if c.startswith(rev)]
            oid = matches[0] if len(matches) == 1 else None
        return self.commits.get(oid) if oid else None


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 the Hub reports as a regular file's oid/ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """State and fault switches of the fake Hub; ``url`` once started."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, str] = {}
        self.drop_commits_to: set[str] = set()
        self.before_commit: Callable[[str], None] | None = None
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- state helpers ------------------------------------------------------------------

    def _new_commit(self, repo: Repo, parent: str | None, message: str, files: dict[str, bytes]) -> Commit:
        self._counter += 1
        h = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{message}\0{self._counter}".encode())
        for p in sorted(files):
            h.update(p.encode() + b"\0" + hashlib.sha1(files[p]).digest())
        c = Commit(h.hexdigest(), parent, message, dict(files))
        repo.commits[c.oid] = c
        return c

    def create_repo(self, repo_id: str) -> Repo:
        with self.lock:
            repo = Repo(repo_id)
            first = self._new_commit(repo, None, "initial commit", {".gitattributes": b"*.safetensors filter=lfs\n"})
            repo.branches["main"] = first.oid
            self.repos[repo_id] = repo
            return repo

    def commit_files(self, repo_id: str, files: dict[str, bytes], message: str = "direct commit") -> str:
        """Commit on main directly (a concurrent writer, for tests)."""
        with self.lock:
            repo = self.repos[repo_id]
            head = repo.commits[repo.branches["main"]]
            c = self._new_commit(repo, head.oid, message, {**head.files, **files})
            repo.branches["main"] = c.oid
            return c.oid

    # -- server lifecycle ---------------------------------------------------------------

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


_REPO = r"(?P<repo>[^/]+/[^/]+)"


class _Handler(BaseHTTPRequestHandler):
    state: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    # -- plumbing -------------------------------------------------------------------------

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send(self, status: int, data: Any = None, *, headers: dict[str, str] | None = None, raw: bytes | None = None,
              head: bool = False) -> None:
        body = raw if raw is not None else (json.dumps(data).encode() if data is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        self._send(status, {"error": message}, headers={"X-Error-Code": code} if code else None)

    def _user(self) -> str | None | bool:
        """The token's user; None when no token; False when the token is invalid."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.state.tokens.get(auth[7:], False)

    def _require_writer(self, namespace: str) -> bool:
        user = self._user()
        if not user:
            self._error(401, "Invalid credentials in Authorization header" if user is False else "Unauthorized")
            return False
        if user != namespace:
            self._error(403, f"You don't have the rights to write to {namespace}")
            return False
        return True

    def _repo(self, repo_id: str, *, head: bool = False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            if head:
                self._send(404, headers={"X-Error-Code": "RepoNotFound"}, head=True)
            else:
                self._error(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _route(self, method: str) -> None:
        path = urlparse(self.path).path
        self.state.requests.append((method, path))
        if self._user() is False and not path.startswith("/api/whoami"):
            self._body()
            return self._error(401, "Invalid credentials in Authorization header")
        for pattern, name in _ROUTES:
            m = re.fullmatch(pattern, path)
            if m and name.startswith(method.lower() + "_"):
                hook = self.state.before_commit
                if name == "post_commit" and hook and m["repo"] not in self.state.drop_commits_to:
                    hook(m["repo"])  # outside the lock: the hook may itself talk to this server
                with self.state.lock:
                    return getattr(self, name)(**m.groupdict())
        self._body()
        self._error(404, f"no route for {method} {path}")

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    # -- endpoints ------------------------------------------------------------------------

    def get_whoami(self) -> None:
        user = self._user()
        if not user:
            return self._error(401, "Invalid user token")
        self._send(200, {"type": "user", "name": user, "orgs": [], "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    def post_validate_yaml(self) -> None:
        self._body()
        self._send(200, {"errors": [], "warnings": []})

    def post_create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        org = payload.get("organization") or self._user()
        repo_id = f"{org}/{payload['name']}"
        if not self._require_writer(org):
            return
        if repo_id in self.state.repos:
            return self._send(409, {"error": "You already created this model repo", "url": f"{self.state.url}/{repo_id}"})
        self.state.create_repo(repo_id)
        self._send(200, {"url": f"{self.state.url}/{repo_id}", "name": repo_id})

    def post_preupload(self, repo: str, rev: str) -> None:
        payload = json.loads(self._body())
        r = self._repo(repo)
        if r is None:
            return
        head = r.resolve(rev)
        files = []
        for f in payload["files"]:
            existing = head.files.get(f["path"]) if head else None
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_oid(existing) if existing is not None else None})
        self._send(200, {"files": files, "commitOid": head.oid if head else None})

    def post_commit(self, repo: str, rev: str) -> None:
        body = self._body()
        r = self._repo(repo)
        if r is None:
            return
        if not self._require_writer(repo.split("/")[0]):
            return
        if repo in self.state.drop_commits_to:
            # Network failure mid-upload: the body was sent, no answer ever comes back.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        branch = unquote(rev)
        if branch not in r.branches:
            return self._error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        head = r.commits[r.branches[branch]]
        parent = header.get("parentCommit")
        if parent and not head.oid.startswith(parent):
            return self._error(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for x in lines:
            v = x["value"]
            if x["key"] == "file":
                files[v["path"]] = base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
            elif x["key"] == "deletedFile":
                files.pop(v["path"], None)
            elif x["key"] == "lfsFile":
                return self._error(400, "this test Hub accepts regular uploads only")
        c = self.state._new_commit(r, head.oid, header.get("summary", ""), files)
        r.branches[branch] = c.oid
        self._send(200, {"commitUrl": f"{self.state.url}/{repo}/commit/{c.oid}", "commitOid": c.oid,
                         "pullRequestUrl": None, "success": True})

    def post_tag(self, repo: str, rev: str) -> None:
        payload = json.loads(self._body() or b"{}")
        r = self._repo(repo)
        if r is None or not self._require_writer(repo.split("/")[0]):
            return
        target = r.resolve(rev)
        if target is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        tag = payload["tag"]
        if tag in r.tags:
            return self._error(409, f"Tag {tag} already exists")
        r.tags[tag] = target.oid
        self._send(200, {})

    def delete_tag(self, repo: str, tag: str) -> None:
        self._body()
        r = self._repo(repo)
        if r is None or not self._require_writer(repo.split("/")[0]):
            return
        if r.tags.pop(unquote(tag), None) is None:
            return self._error(404, f"Tag {tag} not found", "RevisionNotFound")
        self._send(200, {})

    def post_branch(self, repo: str, branch: str) -> None:
        payload = json.loads(self._body() or b"{}")
        r = self._repo(repo)
        if r is None or not self._require_writer(repo.split("/")[0]):
            return
        start = r.resolve(payload.get("startingPoint") or "main")
        if unquote(branch) in r.branches:
            return self._error(409, "Branch already exists")
        r.branches[unquote(branch)] = start.oid
        self._send(200, {})

    def get_refs(self, repo: str) -> None:
        r = self._repo(repo)
        if r is None:
            return
        self._send(200, {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in sorted(r.branches.items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": o} for n, o in sorted(r.tags.items())],
            "converts": [],
        })

    def get_model_info(self, repo: str, rev: str = "main") -> None:
        r = self._repo(repo)
        if r is None:
            return
        c = r.resolve(rev or "main")
        if c is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        self._send(200, {"id": repo, "modelId": repo, "sha": c.oid, "private": False, "tags": [],
                         "siblings": [{"rfilename": p} for p in sorted(c.files)]})

    def get_tree(self, repo: str, rev: str, sub: str | None = None) -> None:
        r = self._repo(repo)
        if r is None:
            return
        c = r.resolve(rev)
        if c is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        prefix = (sub.strip("/") + "/") if sub else ""
        self._send(200, [{"type": "file", "path": p, "oid": git_blob_oid(d), "size": len(d)}
                         for p, d in sorted(c.files.items()) if p.startswith(prefix)])

    def _resolve(self, repo: str, rev: str, path: str, *, head: bool) -> None:
        r = self._repo(repo, head=head)
        if r is None:
            return
        c = r.resolve(rev)
        if c is None:
            return self._send(404, {"error": "Invalid rev id"}, headers={"X-Error-Code": "RevisionNotFound"}, head=head)
        data = c.files.get(unquote(path))
        if data is None:
            return self._send(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": c.oid},
                              head=head)
        self._send(200, raw=data, head=head, headers={"X-Repo-Commit": c.oid, "ETag": f'"{git_blob_oid(data)}"'})

    def get_resolve(self, repo: str, rev: str, path: str) -> None:
        self._resolve(repo, rev, path, head=False)

    def head_resolve(self, repo: str, rev: str, path: str) -> None:
        self._resolve(repo, rev, path, head=True)


_ROUTES = [
    (r"/api/whoami-v2", "get_whoami"),
    (r"/api/validate-yaml", "post_validate_yaml"),
    (r"/api/repos/create", "post_create_repo"),
    (rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", "post_preupload"),
    (rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", "post_commit"),
    (rf"/api/models/{_REPO}/tag/(?P<rev>[^/]+)", "post_tag"),
    (rf"/api/models/{_REPO}/tag/(?P<tag>[^/]+)", "delete_tag"),
    (rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", "post_branch"),
    (rf"/api/models/{_REPO}/refs", "get_refs"),
    (rf"/api/models/{_REPO}/revision/(?P<rev>[^/]+)", "get_model_info"),
    (rf"/api/models/{_REPO}", "get_model_info"),
    (rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.+))?", "get_tree"),
    (rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "get_resolve"),
    (rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "head_resolve"),
]
