"""Write interlinking relations as GeoSPARQL triples (N-Triples) and load them as a named graph.

One triple per (source feature, relation, target feature) that holds, e.g.
``<.../parcels/7> geo:sfContains <.../fields/12>``; predicates come from ``relations.yaml``.
Relations are written in the source -> target direction only (``sfWithin`` from the source means
``sfContains`` from the target). ``geo:sfDisjoint`` is left out by default: it holds for every
pair that shares no grid cell too, so listing it for the verified pairs only would be partial.
Lines are built per relation with numpy indexing and written in batches, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config.linked_data import LinkedDataConfig
from tasks.interlinking.relations import RELATION_NAMES, RELATIONS

#: Relations written unless asked otherwise (all but disjoint).
DEFAULT_RELATIONS: tuple[str, ...] = tuple(n for n in RELATION_NAMES if n != "disjoint")
BATCH_LINES = 500_000


def relation_counts(masks: np.ndarray) -> dict[str, int]:
    """Return how many pairs hold each relation."""
    return {r.name: int(np.count_nonzero(masks & np.uint16(1 << i)))
            for i, r in enumerate(RELATIONS)}


def write_ntriples(
    path: str | Path,
    source_iris: np.ndarray,
    target_iris: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    masks: np.ndarray,
    relations: Iterable[str] = DEFAULT_RELATIONS,
) -> int:
    """Write the relations that hold as N-Triples to ``path`` (not atomic; see the stage).

    Args:
        path: the ``.nt`` file to write.
        source_iris: ``(n,)`` IRIs of the source features.
        target_iris: ``(m,)`` IRIs of the target features.
        source: ``(k,)`` positions of the pairs in the source.
        target: ``(k,)`` positions in the target.
        masks: ``(k,)`` relation masks.
        relations: names of the relations to write.

    Returns:
        The number of triples written.

    Raises:
        ValueError: an unknown relation name.

    """
    wanted = list(relations)
    unknown = sorted(set(wanted) - set(RELATION_NAMES))
    if unknown:
        raise ValueError(f"unknown relations {unknown}; allowed: {list(RELATION_NAMES)}")
    subjects = np.asarray(["<" + str(i) + ">" for i in source_iris], dtype=object)
    objects = np.asarray(["<" + str(i) + ">" for i in target_iris], dtype=object)
    written = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for name in wanted:
            bit = np.uint16(1 << RELATION_NAMES.index(name))
            predicate = f" <{RELATIONS[RELATION_NAMES.index(name)].predicate}> "
            hold = np.flatnonzero(masks & bit)
            for start in range(0, hold.size, BATCH_LINES):
                chosen = hold[start:start + BATCH_LINES]
                subj = subjects[source[chosen]]
                obj = objects[target[chosen]]
                out.write("".join([s + predicate + o + " .\n"
                                   for s, o in zip(subj, obj, strict=True)]))
                written += chosen.size
    return written


def load_relations_graph(
    cfg: LinkedDataConfig, rdf_file: str | Path, graph: str, store: Any = None
) -> dict[str, Any]:
    """Load a relations file into its own named graph with the linked-data store code.

    Args:
        cfg: a validated LinkedDataConfig (store mode, path / URL).
        rdf_file: the ``.nt`` file written by the interlinking stage.
        graph: the named graph IRI (replaced if present).
        store: an open store to use (default: the configured one, closed after).

    Returns:
        ``load_product``'s summary: graph, triples, seconds, store.

    """
    from tasks.linked_data.store import load_product

    rdf_file = Path(rdf_file)
    return load_product(cfg, "interlinking", rdf_file.parent.name, rdf_path=rdf_file, graph=graph,
                        store=store)
