"""Security headers on every response: a CSP without inline scripts, no framing, no sniffing."""

import secrets

from flask import Flask, request

# no inline handler runs: Flask-Admin's (menus, filters, confirmations) are replaced by static/js/console.js
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def csp_nonce() -> str:
    """A nonce for this response: only Flask-Admin's own inline scripts carry it; our pages have none."""
    # per request (an app context, and its g, may serve several)
    if "omegaops.csp_nonce" not in request.environ:
        request.environ["omegaops.csp_nonce"] = secrets.token_urlsafe(16)
    return request.environ["omegaops.csp_nonce"]


def register_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=csp_nonce()))
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
