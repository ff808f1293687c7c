#!/usr/bin/python3
"""A small Docker-token-protocol issuer for the test harness.

It behaves like Docker Hub's auth.docker.io as far as a registry client can
tell, so that the Bearer flow in basic-registry is tested against the real
protocol rather than against our own idea of it:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
       optional HTTP Basic credentials.
       * anonymous: `pull` on repositories named `public/...`, nothing else.
         A scope that cannot be granted is NOT an error: the answer is still
         200 with a token whose access list lacks it (Docker Hub does this;
         the registry then answers 401 insufficient_scope).
       * the configured user: every action asked for.
       * wrong credentials: 401 with a JSON error body.
       Response: {"token", "access_token" (same), "expires_in", "issued_at"}.
  POST /token  OAuth2 form (grant_type=password), as Docker Hub also accepts;
       containerd-style clients try it first when they hold a password.
  GET  /stats        {"tokens_issued": N, "requests": [{"scope": [...], "user": ..., "agent": ...}, ...]}
  POST /reset-stats  clears the above (tests use it to check token caching).

Tokens are ES256 JWTs with the signing certificate in the `x5c` header;
distribution 2.8 verifies the chain against `auth.token.rootcertbundle`
(the same self-signed certificate).

Must run with Debian's /usr/bin/python3 (python3-jwt, python3-cryptography).
"""

import argparse
import base64
import datetime
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

STATS_LOCK = threading.Lock()
STATS = {"tokens_issued": 0, "requests": []}


def parse_scopes(values):
    """Split scope parameters into (raw, type, name, actions) tuples.

    Several `scope` parameters are allowed, and OAuth2-style clients put
    several scopes in one value separated by spaces; accept both. The name
    sits between the first and the last colon (a repository name has no
    colon, but a resource type may carry a class: `repository(plugin)`).
    """
    scopes = []
    for value in values:
        for raw in value.split():
            parts = raw.split(":")
            if len(parts) < 3:
                continue  # malformed scope: ignored, as Docker Hub does
            rtype, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
            scopes.append((raw, rtype, name, [a for a in actions.split(",") if a]))
    return scopes


def grant(scopes, user):
    """The access claim for `user` (None = anonymous) asking for `scopes`."""
    access = []
    for _raw, rtype, name, actions in scopes:
        if user is None:
            # Anonymous: read-only, and only for public/ repositories.
            if rtype == "repository" and name.startswith("public/") and "pull" in actions:
                allowed = ["pull"]
            else:
                allowed = []
        else:
            allowed = list(actions)
        if allowed:
            # Merge repeated scopes for the same resource instead of listing it twice.
            for entry in access:
                if entry["type"] == rtype and entry["name"] == name:
                    entry["actions"] = sorted(set(entry["actions"]) | set(allowed))
                    break
            else:
                access.append({"type": rtype, "name": name, "actions": allowed})
    return access


class Issuer:
    def __init__(self, args):
        with open(args.key, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(args.cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        # x5c carries standard (not URL-safe) base64 of the DER certificate.
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer = args.issuer
        self.default_service = args.service
        self.user = args.user
        self.password = args.password
        self.expires_in = args.expires_in

    def token(self, service, user, access):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": service,
            "exp": now + self.expires_in,
            # A little slack for nbf/iat so a registry whose clock reads a
            # second behind ours does not reject a brand-new token.
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": self.x5c})


class Handler(BaseHTTPRequestHandler):
    server_version = "basic-docker-harness-token-issuer/1"
    protocol_version = "HTTP/1.1"

    # ---- helpers -------------------------------------------------------
    def send_json(self, status, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def basic_credentials(self):
        """(user, password) from an Authorization: Basic header, None if absent,
        False if present but unparseable."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None  # e.g. a stale Bearer token: treated as anonymous
        try:
            user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except Exception:
            return False
        if not sep:
            return False
        return user, password

    def record(self, scopes, user, service, status):
        with STATS_LOCK:
            if status == 200:
                STATS["tokens_issued"] += 1
            STATS["requests"].append({
                "method": self.command,
                "scope": [s[0] for s in scopes],
                "user": user,
                "service": service,
                "status": status,
                "agent": self.headers.get("User-Agent", ""),
                "time": time.time(),
            })

    def issue(self, service, scope_values, creds, oauth):
        issuer = self.server.issuer
        service = service or issuer.default_service
        scopes = parse_scopes(scope_values)
        user = None
        if creds is False or (creds and (creds[0] != issuer.user or creds[1] != issuer.password)):
            self.record(scopes, creds[0] if creds else None, service, 401)
            # Docker Hub answers wrong credentials with a JSON body like this.
            body = {"details": "incorrect username or password",
                    "errors": [{"code": "UNAUTHORIZED",
                                "message": "incorrect username or password"}]}
            if oauth:
                body["error"] = "invalid_grant"
            self.send_json(401, body)
            return
        if creds:
            user = creds[0]
        access = grant(scopes, user)
        token = issuer.token(service, user, access)
        self.record(scopes, user, service, 200)
        issued_at = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        body = {"token": token, "access_token": token,
                "expires_in": issuer.expires_in, "issued_at": issued_at}
        if oauth:
            body["scope"] = " ".join(s[0] for s in scopes)
        self.send_json(200, body)

    # ---- routes --------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            q = urllib.parse.parse_qs(url.query)
            self.issue(q.get("service", [None])[0], q.get("scope", []),
                       self.basic_credentials(), oauth=False)
        elif url.path == "/stats":
            with STATS_LOCK:
                body = json.loads(json.dumps(STATS))
            self.send_json(200, body)
        elif url.path == "/healthz":
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": "not found"})

    do_HEAD = do_GET

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/reset-stats":
            with STATS_LOCK:
                STATS["tokens_issued"] = 0
                STATS["requests"] = []
            self.send_json(200, {"ok": True})
        elif url.path == "/token":
            form = urllib.parse.parse_qs(raw.decode())
            grant_type = form.get("grant_type", [""])[0]
            if grant_type != "password":
                # No refresh tokens here; a client must fall back to GET.
                self.send_json(400, {"error": "unsupported_grant_type"})
                return
            creds = (form.get("username", [""])[0], form.get("password", [""])[0])
            self.issue(form.get("service", [None])[0], form.get("scope", []), creds, oauth=True)
        else:
            self.send_json(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
        sys.stderr.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:5103")
    p.add_argument("--key", required=True, help="PEM EC P-256 private key")
    p.add_argument("--cert", required=True, help="PEM certificate of that key (sent as x5c)")
    p.add_argument("--issuer", required=True, help="iss claim; must equal auth.token.issuer")
    p.add_argument("--service", required=True, help="aud when the client sends no service")
    p.add_argument("--user", default="tokenuser")
    p.add_argument("--password", default="tokenpass")
    p.add_argument("--expires-in", type=int, default=300)
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.issuer = Issuer(args)
    sys.stderr.write("token issuer listening on %s\n" % args.listen)
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
