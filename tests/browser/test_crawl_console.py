"""The console crawler (issue 14): every Flask-Admin view the app registers, found at run time, crawled in the
browser by an admin over a database with a row of every model. A new view is covered without being listed here.

The problems are collected per view and reported together: every page answering 500, every console error or
CSP violation, every filter, sort, create or edit that fails, every declined confirmation that changed the
database, every destructive action that ran without asking. Screenshots: tests/artifacts/screenshots/crawl_console/.
"""

import time

from sqlalchemy import func, select

from app.extensions import db

from .crawl_console_helpers import ConsoleCrawler
from .helpers import log_in
from .seed import seed


def test_a_crawl_of_every_console_view_finds_no_problem(page, live_server, live_app, record_property):
    start = time.monotonic()
    rows = seed()
    empty = [
        table.name
        for table in db.metadata.sorted_tables
        if not db.session.scalar(select(func.count()).select_from(table))
    ]
    db.session.rollback()
    assert not empty, f"the seed left tables empty: {empty}"

    log_in(page, rows.admin.email)
    crawler = ConsoleCrawler(page, live_server.app, rows)
    crawl = crawler.run()

    seconds = time.monotonic() - start
    summary = f"{crawl.summary()} in {seconds:.0f} s"
    print(summary)
    for line in crawl.not_accepted:
        print(f"  declined only: {line}")
    record_property("console_crawl", summary)
    for name, value in crawl.counts.items():
        record_property(f"console_crawl_{name.replace(' ', '_')}", value)
    record_property("console_crawl_views", len(crawl.views))
    record_property("console_crawl_problems", len(crawl.problems))

    assert len(crawl.views) >= 14 and crawl.counts["filters"] and crawl.counts["sorts"], summary
    by_view: dict[str, list] = {}
    for problem in crawl.problems:
        by_view.setdefault(problem.view, []).append(problem)
    assert not crawl.problems, f"{summary}\n" + "\n".join(
        f"{view} ({len(problems)}):\n" + "\n".join(f"  {p}" for p in problems) for view, problems in by_view.items()
    )
