"""A prepared document is freed by reference counting, not left to the garbage collector.

graphql-core links a parsed document's tokens both ways and its validation rules hold the
document through reference cycles; in a flood of distinct documents that garbage filled the
young generation, and each collection of it held the GIL for 70-180 ms (a bystander's p99
in tests/edge/test_stalls.py). The visitors of validation cache bound methods of
themselves, which made every validated document ~760 more objects of cyclic garbage (the
cost flood's documents, valid but over the cost limit). Here: after preparing a document
and dropping it, a full collection finds no unreachable cycles at all.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable

import pytest

from saas.settings import Settings
from schema.edge.documents import DocumentErrors, Documents
from schema.root import build_schema
from tests.edge import flood

TREE = {"Token", "Location", "DocumentNode", "OperationDefinitionNode", "FieldNode",
        "SelectionSetNode", "NameNode"}


@pytest.fixture(scope="module")
def documents(settings: Settings) -> Documents:
    return build_schema(settings).documents


def _cyclic_garbage_after(work: Callable[[], object]) -> Counter[str]:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        work()
        gc.collect()
        return Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize(("query", "outcome"), [
    (flood._cost(1), "ok"),  # valid: 30 aliased deals pages with history
    ("{ me { tenantId } deals(first: 5) { edges { node { id title } } } }", "ok"),
    (flood._aliases(2), "validation"),  # 30 aliases and one unknown field
    (flood._repeats(3), "validation"),  # refused before validation
    ("{ me { tenantId } ", "parse"),
    # variables (their usages are walked by visitors of their own) and fragments
    ("query Q($n: Int!, $a: String) { deals(first: $n, after: $a) { ...D } } "
     "fragment D on DealConnection { edges { node { id history { seq } } } }", "ok"),
    ("{ " + " ".join(f"nope{i}" for i in range(30)) + " }", "validation"),  # over 20 errors
    # 21 operations over the depth limit: the depth rule reports while it is made, and the
    # 21st error's abort escaped validation (a 500) before it was caught there
    (" ".join(f"query Q{i} {{ ...F }}" for i in range(21))
     + " fragment F on Query { deals(first: 1) { edges { node { "
     + "owner { deals(first: 1) { edges { node { " * 3 + "id" + " } } } }" * 3
     + " } } } }", "validation"),
])
def test_a_prepared_document_leaves_none_of_its_tree_to_the_collector(
    documents: Documents, query: str, outcome: str,
) -> None:
    seen: list[str] = []

    def prepare() -> None:
        try:
            documents.prepare(query, cache=False)
            seen.append("ok")
        except DocumentErrors as e:
            seen.append(e.kind)

    garbage = _cyclic_garbage_after(prepare)
    assert seen == [outcome]
    assert not TREE & garbage.keys(), {k: garbage[k] for k in TREE & garbage.keys()}
    assert not garbage, garbage.most_common(10)
