"""Strawberry's parse and validate steps, answered by the edge's documents.

HTTP requests arrive with their document already prepared by the gate (on the request's
context); websocket operations were prepared when they were subscribed (schema.edge.ws) and
are found in the cache. Either way Strawberry neither parses nor validates again.
"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from schema.edge.documents import Document, DocumentErrors, Documents


class EdgeDocuments(SchemaExtension):
    """Sets `graphql_document` from the edge and marks it validated."""

    documents: Documents  # set by schema.root once the schema exists

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        prepared: Document | None = getattr(ec.context, "document", None)
        if prepared is None and ec.query is not None:
            principal = getattr(ec.context, "principal", None)
            try:
                prepared = self.documents.prepare(ec.query, cache=principal is not None)
            except DocumentErrors as e:
                ec.pre_execution_errors = e.errors
                if e.kind == "validation" and e.node is not None:
                    ec.graphql_document = e.node
                else:  # Strawberry parses and reports the same syntax error itself
                    ec.parse_options["max_tokens"] = self.documents.max_tokens
                    ec.pre_execution_errors = None
        if prepared is not None:
            ec.graphql_document = prepared.node
            ec.pre_execution_errors = []  # validated by the edge: Strawberry skips it
        yield

    def on_validate(self) -> Iterator[None]:
        yield
