"""The list envelope of the API: ``{"meta": {limit, offset, total_count, next, previous}, "objects": [...]}``."""

from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, func, select

from ..extensions import db


def page(query: Select, args: dict, created_at, ident, options=()) -> dict:
    """One page of ``query``, ordered by creation time (then id, for a stable order), with its meta.

    ``args`` are the parsed list arguments: ``limit``, ``offset`` and ``order_by``; the links to the
    next and previous pages keep the request's filters. ``options`` (eager loads of what the page
    shows: no query per object) apply to the page's rows, not to the count or the walk to the offset.
    """
    limit, offset = args["limit"], args["offset"]
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    order = (created_at.desc(), ident.desc()) if args["order_by"].startswith("-") else (created_at, ident)
    # the page's ids first (an index-only walk to the offset), then those rows with what they show
    ids = db.session.scalars(query.with_only_columns(ident).order_by(*order).limit(limit).offset(offset)).all()
    rows = (
        db.session.scalars(select(ident.class_).where(ident.in_(ids)).options(*options)).unique().all() if ids else []
    )
    by_id = {row.id: row for row in rows}
    objects = [by_id[i] for i in ids if i in by_id]
    return {
        "meta": {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": page_uri(limit, offset + limit) if offset + limit < total else None,
            "previous": page_uri(limit, max(0, offset - limit)) if offset > 0 else None,
        },
        "objects": objects,
    }


def page_uri(limit: int, offset: int) -> str:
    args = [(key, value) for key, value in request.args.items(multi=True) if key not in ("limit", "offset")]
    return f"{request.path}?{urlencode([*args, ('limit', limit), ('offset', offset)])}"
