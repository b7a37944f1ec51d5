"""What the schema's ON DELETE rules say about deleting a row, asked before deleting it.

The rules are the foreign keys' own (``ondelete`` in the models): RESTRICT marks history, which refuses the delete
of what it refers to; CASCADE marks what a row owns, which goes with it; SET NULL lets go of it.
"""

from sqlalchemy import ColumnElement, Table, and_, exists, inspect, select

from ..extensions import db


def refusing_references(row) -> list[str]:
    """Where rows refuse deleting ``row``, as ``table.column``: history referring to it, or to a row it owns."""
    table = inspect(row).mapper.local_table
    this = and_(*(column == value for column, value in zip(table.primary_key, inspect(row).identity, strict=True)))
    return sorted(set(_refusing(table, this)))


def _refusing(table: Table, rows: ColumnElement[bool]) -> list[str]:
    found = []
    for child in db.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is not table:
                continue
            referring = fk.parent.in_(select(fk.column).where(rows))
            rule = (fk.ondelete or "NO ACTION").upper()
            if rule == "CASCADE":
                found += _refusing(child, referring)  # what it owns: does anything refuse *its* delete?
            elif rule != "SET NULL" and db.session.scalar(select(exists().where(referring))):  # RESTRICT, NO ACTION
                found.append(f"{child.name}.{fk.parent.name}")
    return found
