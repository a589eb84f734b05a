"""GraphQL documents: parsed within the token limit, checked cheaply, validated, cached.

The order bounds the work an anonymous client can cause: the source length and tokens are
limited while lexing; a linear pass refuses shapes that make validation quadratic (the same
field or fragment repeated many times in one selection set); then full validation. Only
documents that validated, sent by an authenticated caller, enter the cache, which is an LRU
bounded by an estimate of the parsed documents' bytes; so distinct junk documents cannot
grow the process. The HTTP and websocket edges cache a document only once its cost for the
request passed (`remember`), so over-cost documents are not kept either.

Parsing and validating a document that is not cached takes milliseconds to hundreds of
milliseconds of pure Python (a 1 MiB comment is lexed character by character: ~250 ms), so
the edge does it off the event loop (`prepare_off_loop`; without cyclic garbage:
schema.edge.parsing): on one thread for anonymous callers and one for authenticated ones,
each resting after a document as long as it took.
A flood of such documents then queues behind itself (an anonymous one not in front of
signed-in callers' new documents) and leaves the GIL to the event loop at least half of the
time, instead of holding the loop for the whole of each document (a validation flood had a
bystander's p99 at 2.8 s; tests/edge/test_stalls.py). `prepare` stays synchronous for the
schema extension's fallback (documents prepared in-process, already cached as a rule).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
)

from schema.edge.parsing import parsed, validated

T = TypeVar("T")
# A parsed document costs much more memory than its text (node objects per token); measured
# with tracemalloc on this schema's documents: ~25-40 bytes per source character.
BYTES_PER_CHARACTER = 48
ENTRY_OVERHEAD = 2048
MAX_REPEATS = 8  # same response name or fragment spread in one selection set
MAX_SPREADS = 16  # fragment spreads in one selection set
# Fields of the document once its fragments are expanded: spreads of spreads multiply
# (8 spreads of a fragment with 8 spreads of ... is 8^depth fields for validation and cost).
MAX_EXPANDED_FIELDS = 5000
# A validation thread rests this many times as long as each document took: a signed-in
# caller's thread takes at most a third of a core, the anonymous one at most a quarter (GIL
# time shows in a bystander's p99 on a 2-core box: 136 ms for the anonymous thread at half
# a core in a CI run; 130 ms for the signed-in one, also at half a core, in another).
REST = 2.0
ANONYMOUS_REST = 3.0


class DocumentErrors(Exception):
    """The document cannot run: `kind` is parse, validation or operation."""

    def __init__(self, kind: str, errors: list[GraphQLError],
                 node: DocumentNode | None = None) -> None:
        super().__init__(errors[0].message if errors else kind)
        self.kind = kind
        self.errors = errors
        self.node = node  # the parsed document, when it parsed


@dataclass(frozen=True)
class Document:
    """A parsed, validated document and the digest that names it."""

    sha256: str
    node: DocumentNode
    size: int

    def operation(self, name: str | None) -> OperationDefinitionNode:
        """The operation to run: the named one, or the only one (the spec's rule)."""
        operations = [d for d in self.node.definitions if isinstance(d, OperationDefinitionNode)]
        if name is None:
            if len(operations) != 1:
                raise DocumentErrors("operation", [GraphQLError(
                    "the document has several operations: say which one to run in "
                    "'operationName'" if operations else "the document has no operation")])
            return operations[0]
        for operation in operations:
            if operation.name is not None and operation.name.value == name:
                return operation
        raise DocumentErrors("operation", [GraphQLError(
            f"the document has no operation named '{name[:100]}'")])


class RestingThread:
    """One worker thread that, after each job, rests as long as the job took before the
    next one: a flood of documents takes at most half a core and leaves the GIL free half
    of the time (the event loop waits for it at every wake-up otherwise)."""

    def __init__(self, name: str, rest: float = REST) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._rest = rest
        self._rest_until = 0.0  # touched only by the worker thread

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._rested, fn, *args)

    def _rested(self, fn: Callable[..., T], *args: Any) -> T:
        wait = self._rest_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        start = time.monotonic()
        try:
            return fn(*args)
        finally:
            end = time.monotonic()
            self._rest_until = end + (end - start) * self._rest


def digest(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


class Documents:
    """Parse-and-validate with the limits above; one per schema and process."""

    def __init__(self, schema: GraphQLSchema, rules: Collection[type[ASTValidationRule]], *,
                 max_tokens: int, max_length: int, max_bytes: int,
                 hide_suggestions: bool, max_string_length: int = 20_000) -> None:
        self.schema = schema
        self.rules = (*rules, string_literals(max_string_length))
        self.max_tokens = max_tokens
        self.max_length = max_length
        self.max_bytes = max_bytes
        self.hide_suggestions = hide_suggestions
        self.size_bytes = 0
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._anonymous = RestingThread("validate-anonymous", ANONYMOUS_REST)
        self._authenticated = RestingThread("validate")

    def cached(self, sha256: str) -> Document | None:
        document = self._cache.get(sha256)
        if document is not None:
            self._cache.move_to_end(sha256)
        return document

    def prepare(self, query: str, *, cache: bool, sha256: str | None = None,
                max_tokens: int | None = None, max_length: int | None = None) -> Document:
        """The validated document for `query`, or DocumentErrors; cached when `cache`.
        `max_tokens` and `max_length` lower the limits (anonymous callers: schema.edge.http)."""
        key = sha256 or digest(query)
        document = self.cached(key)
        if document is None:
            document = self._build(query, key, max_tokens, max_length)
            if cache:
                self.remember(document)
        return document

    async def prepare_off_loop(self, query: str, *, anonymous: bool = False,
                               sha256: str | None = None, max_tokens: int | None = None,
                               max_length: int | None = None) -> Document:
        """`prepare`, with the parsing and validation of a document not in the cache on
        one of the validation threads (the cache itself is only touched on the loop). Not
        cached here: the edge calls `remember` once the document may run."""
        self._check_length(query, max_length)  # before hashing a junk megabyte
        key = sha256 or digest(query)
        document = self.cached(key)
        if document is None:
            thread = self._anonymous if anonymous else self._authenticated
            document = await thread.run(self._build, query, key, max_tokens, max_length)
        return document

    def _build(self, query: str, key: str, max_tokens: int | None,
               max_length: int | None) -> Document:
        """Parse within the limits, refuse quadratic shapes, validate (no shared state)."""
        self._check_length(query, max_length)
        try:
            node = parsed(query, min(max_tokens or self.max_tokens, self.max_tokens))
        except GraphQLError as e:
            raise DocumentErrors("parse", [e]) from None
        except RecursionError:
            raise DocumentErrors("parse", [GraphQLError("the document is nested too deeply")]
                                 ) from None
        repeated = _repetition(node) or _expansion(node)
        if repeated is not None:
            raise DocumentErrors("validation", [GraphQLError(repeated)], node)
        errors = validated(self.schema, node, self.rules,
                           hide_suggestions=self.hide_suggestions)
        if errors:
            raise DocumentErrors("validation", list(errors), node)
        return Document(sha256=key, node=node,
                        size=len(query) * BYTES_PER_CHARACTER + ENTRY_OVERHEAD)

    def _check_length(self, query: str, max_length: int | None) -> None:
        length = min(max_length or self.max_length, self.max_length)
        if len(query) > length:
            raise DocumentErrors("parse", [GraphQLError(
                f"the document is longer than {length} characters")])

    def remember(self, document: Document) -> None:
        """Cache a prepared document once it may run (the edge calls this after the cost
        check: a flood of distinct over-cost documents neither churns the cache nor stays
        alive for the garbage collector to walk)."""
        if document.sha256 in self._cache:
            self._cache.move_to_end(document.sha256)
            return
        if document.size > self.max_bytes:
            return
        self._cache[document.sha256] = document
        self.size_bytes += document.size
        while self.size_bytes > self.max_bytes:
            _, evicted = self._cache.popitem(last=False)
            self.size_bytes -= evicted.size

    def __len__(self) -> int:
        return len(self._cache)


def string_literals(max_length: int) -> type[ASTValidationRule]:
    """A rule refusing string literals with NUL characters or over `max_length`."""

    class StringLiterals(ASTValidationRule):
        def enter_string_value(self, node: StringValueNode, *_: object) -> None:
            if "\x00" in node.value:
                self.report_error(GraphQLError("strings must not contain NUL characters",
                                               node))
            elif len(node.value) > max_length:
                self.report_error(GraphQLError(
                    f"a string is longer than {max_length} characters", node))

    return StringLiterals


def _repetition(document: DocumentNode) -> str | None:
    """A message when a selection set repeats a response name or fragment spread more than
    MAX_REPEATS times (validation's overlap check is quadratic in such repeats)."""
    sets: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            sets.append(definition.selection_set)
    while sets:
        names: Counter[str] = Counter()
        for selection in _flatten(sets.pop()):
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] += 1
                if selection.selection_set is not None:
                    sets.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                names["..." + selection.name.value] += 1
        spreads = sum(count for name, count in names.items() if name.startswith("..."))
        if spreads > MAX_SPREADS:
            return (f"{spreads} fragment spreads in one selection set (at most {MAX_SPREADS}: "
                    "validation compares every pair)")
        for name, count in names.items():
            if count > MAX_REPEATS:
                return (f"'{name[:60]}' is selected {count} times in one selection set "
                        f"(at most {MAX_REPEATS})")
    return None


def _expansion(document: DocumentNode) -> str | None:
    """A message when expanding the fragments gives more than MAX_EXPANDED_FIELDS fields
    (counted once per fragment, linear in the document)."""
    fragments = {d.name.value: d for d in document.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    sizes: dict[str, int] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if (_expanded_size(definition.selection_set, frozenset(), fragments, sizes)
                    > MAX_EXPANDED_FIELDS):
                return (f"the operation expands to more than {MAX_EXPANDED_FIELDS} fields "
                        "(fragments spread inside fragments multiply)")
    return None


def _expanded_size(selection_set: SelectionSetNode, visiting: frozenset[str],
                   fragments: dict[str, FragmentDefinitionNode], sizes: dict[str, int]) -> int:
    """Fields of `selection_set` with its fragments expanded, each fragment's size computed
    once into `sizes` (a module function: a recursive closure would be a reference cycle)."""
    total = 0
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                total += 1
                if selection.selection_set is not None:
                    stack.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visiting or name not in fragments:
                    continue  # a cycle or an unknown fragment: validation says so
                if name not in sizes:
                    sizes[name] = _expanded_size(fragments[name].selection_set,
                                                 visiting | {name}, fragments, sizes)
                total += sizes[name]
        if total > MAX_EXPANDED_FIELDS:
            return total
    return total


def _flatten(selection_set: SelectionSetNode) -> Iterable[object]:
    """Selections of a set with its inline fragments' selections folded in."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            else:
                yield selection
