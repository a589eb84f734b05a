"""`contactsConnection` and `companiesConnection` as one statement each.

The page is saas.contacts.search.page_query's, the resolver's own definition of the text
filter, the keyset condition and the order (PostgreSQL's lower(name), then id). Cursors
are rendered as search.encode_cursor renders them: base64url of the JSON `[key, "id"]`,
where PostgreSQL's to_json of the key escapes exactly the characters Python's json.dumps
escapes with ensure_ascii=False (", \\, \\b \\f \\n \\r \\t, other controls as \\u00xx).
Input the resolver would refuse (a companyId that is not a company's, a bad cursor,
`first` out of range) is left to it (`None`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from saas.contacts import search
from saas.contacts.models import Company, Contact
from saas.errors import DomainError
from schema.compiled.connections import Page, base64url, compile_connection
from schema.compiled.objects import ObjectCompiler
from schema.compiled.selection import Field
from schema.nodes import decode_id


def cursor_sql(alias: str) -> str:
    """search.encode_cursor in SQL."""
    return base64url(f"'[' || to_json({alias}._key)::text || ', \"' || {alias}.id::text "
                     f"|| '\"]'")


def _compile(c: ObjectCompiler, f: Field, model: type[Contact] | type[Company],
             node_type: str) -> Select[Any] | None:
    args = c.selector.arguments(f)
    try:
        company = args.get("companyId")
        q = search.page_query(
            model=model, first=args["first"], after=args["after"], search=args["search"],
            company_id=decode_id(company, "Company", field="companyId") if company else None)
    except DomainError:
        return None
    page = Page(table=model.__table__, where=q.where, filters=q.filters, key=q.key,
                ordering=q.ordering, limit=q.limit, first=int(args["first"]))
    return compile_connection(c, f, node_type, page, cursor_sql)


def compile_contacts(c: ObjectCompiler, f: Field) -> Select[Any] | None:
    return _compile(c, f, Contact, "Contact")


def compile_companies(c: ObjectCompiler, f: Field) -> Select[Any] | None:
    return _compile(c, f, Company, "Company")
