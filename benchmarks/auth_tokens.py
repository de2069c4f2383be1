"""Cost of the sign-in checks: validating a bearer JWT (RS256, JWKS cached), the one JWKS refresh an
unknown ``kid`` causes, and the scrypt work of one local password check.

The JWKS is served over HTTP on loopback by this script (the same discovery + JWKS fetching code as
production, ``services.auth.discovery``); tokens are minted with a fresh RSA-2048 key. JSON on stdout.

    .venv/bin/python benchmarks/auth_tokens.py --tokens 2000 --out /tmp/auth_tokens.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.auth import jwt_tokens, passwords
from services.auth.discovery import Provider

AUDIENCE = "https://dmask.bench/api"


def serve_provider(jwk: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    docs = {
        "/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"},
        "/jwks": {"keys": [jwk]},
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps(docs.get(self.path, {})).encode()
            self.send_response(200 if self.path in docs else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, issuer


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--passwords", type=int, default=10)
    p.add_argument("--out")
    args = p.parse_args()
    load_before = os.getloadavg()[0]

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {
        "kid": "bench",
        "use": "sig",
        "alg": "RS256",
    }
    server, issuer = serve_provider(public)
    provider = Provider(issuer, min_refresh_s=0.0)
    now = int(time.time())
    tokens = [
        jwt.encode(
            {
                "iss": issuer,
                "aud": AUDIENCE,
                "sub": "ehr",
                "scope": "media:read",
                "exp": now + 600,
                "iat": now,
                "jti": uuid.uuid4().hex,
            },
            key,
            algorithm="RS256",
            headers={"kid": "bench"},
        )
        for _ in range(args.tokens)
    ]
    jwt_tokens.validate(provider, tokens[0], AUDIENCE)  # discovery + JWKS fetch, once
    valid = []
    for token in tokens:
        t0 = time.perf_counter()
        jwt_tokens.validate(provider, token, AUDIENCE)
        valid.append(time.perf_counter() - t0)

    stranger = jwt.encode(
        {"iss": issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 600},
        key,
        algorithm="RS256",
        headers={"kid": "unknown"},
    )
    refresh = []
    for _ in range(50):
        t0 = time.perf_counter()
        with contextlib.suppress(jwt_tokens.TokenRejected):
            jwt_tokens.validate(provider, stranger, AUDIENCE)
        refresh.append(time.perf_counter() - t0)

    stored = passwords.hash_password("a benchmark password")
    checks = []
    for _ in range(args.passwords):
        t0 = time.perf_counter()
        passwords.check_password("a benchmark password", stored)
        checks.append(time.perf_counter() - t0)
    server.shutdown()

    result = {
        "benchmark": "auth_tokens",
        "jwt_validate_cached_jwks": {"tokens": len(valid), **percentiles(valid)},
        "jwt_unknown_kid_with_one_refresh": {"tokens": len(refresh), **percentiles(refresh)},
        "jwks_fetches": provider.jwks_fetches,
        "scrypt_password_check": {
            "checks": len(checks),
            "p50_ms": round(statistics.median(checks) * 1e3, 1),
            "params": {"n": passwords.SCRYPT_N, "r": passwords.SCRYPT_R, "p": passwords.SCRYPT_P},
        },
        "loadavg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
