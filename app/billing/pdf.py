"""Invoice PDFs with WeasyPrint, from our own template, offline.

Fonts come from the system (fontconfig); the only URLs the renderer may fetch are files of our own
static folder (``url_fetcher``): a template that names anything else fails instead of reaching out.
One ``FontConfiguration`` per process: building it is the slow part of a first render.
"""

import hashlib
from pathlib import Path

from flask import current_app, render_template

_fonts = None


def font_config():
    global _fonts
    if _fonts is None:
        from weasyprint.text.fonts import FontConfiguration

        _fonts = FontConfiguration()
    return _fonts


def check_local(url: str) -> str:
    """``url`` when it is a file of the app's static folder; a ValueError (the render goes on without it) else."""
    static = Path(current_app.static_folder).resolve()
    if url.startswith("file://") and Path(url[len("file://") :].split("?")[0]).resolve().is_relative_to(static):
        return url
    raise ValueError(f"the invoice template may not fetch {url[:100]!r}")


def local_fetcher():
    """WeasyPrint's fetcher, for our static files only."""
    from weasyprint.urls import URLFetcher

    class LocalFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            return super().fetch(check_local(url), headers)

    return LocalFetcher(allowed_protocols={"file"})


def invoice_html(invoice) -> str:
    config = current_app.config
    return render_template(
        "billing/invoice.html",
        invoice=invoice,
        company=config["BILLING_COMPANY"],
        payment_instructions=config["BILLING_PAYMENT_INSTRUCTIONS"],
    )


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML

    base = Path(current_app.static_folder).resolve().as_uri() + "/"
    return HTML(string=html, base_url=base, url_fetcher=local_fetcher()).write_pdf(font_config=font_config())


def invoice_pdf(invoice) -> tuple[bytes, str]:
    """The invoice as PDF bytes and their sha256."""
    data = render_pdf(invoice_html(invoice))
    return data, hashlib.sha256(data).hexdigest()
