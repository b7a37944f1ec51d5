"""The console guard itself: a CSP violation or an uncaught exception on a page is caught, not silently passed."""

from app.security import CSP

from .helpers import expect

PROBE = """<!doctype html><html><body><h1>probe</h1>
<script>document.title = "inline ran";</script>
<script nonce="probe">null.boom;</script>
</body></html>"""


def test_csp_violations_and_uncaught_exceptions_are_recorded(page, console_errors):
    # a page of the live server's origin, under the app's own CSP, with one inline script lacking the nonce
    page.route(
        "**/console-guard-probe",
        lambda route: route.fulfill(
            headers={"Content-Type": "text/html", "Content-Security-Policy": CSP.format(nonce="probe")}, body=PROBE
        ),
    )
    page.goto("/console-guard-probe")
    expect(page.get_by_role("heading", name="probe")).to_be_visible()
    expect(page).not_to_have_title("inline ran")
    page.evaluate("0")  # a round trip, so the console events have arrived

    errors = console_errors.unexpected()
    assert any("Content Security Policy" in text for text in errors), errors
    assert any(text.startswith("uncaught exception:") and "boom" in text for text in errors), errors
    console_errors.messages.clear()  # seen: this test passes
