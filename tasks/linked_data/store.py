"""Load RDF into a triple store, one named graph per product and run; re-loads replace the graph.

Two stores behind one interface:

* :class:`EmbeddedStore` - a persistent ``pyoxigraph.Store`` folder (default ``{root}/linked_data/
  store``); loading clears the graph and bulk-loads the file. RocksDB allows one writer process:
  Airflow serialises loads through the ``triple_store`` pool.
* :class:`HttpStore` - any SPARQL 1.1 server (Oxigraph: ``eeflow rdf serve`` or ``oxigraph serve``)
  through the SPARQL 1.1 Update and Graph Store HTTP Protocol (``POST {store}?graph=IRI``) in
  chunks of ``chunk_triples`` lines sent by ``parallel_requests`` threads (with Oxigraph's
  ``no_transaction`` / ``lenient`` parameters when ``oxigraph_bulk``). ``store.replace`` picks how
  a re-load replaces the graph: ``drop_then_load`` (files of at most ``atomic_max_triples``
  triples and Turtle: one Graph Store ``PUT``, atomic on Oxigraph; bigger ones: clear, then the
  chunks) or
  ``staging_move`` (chunks into ``{graph}/staging``, then ``MOVE`` in one update, so readers that
  name the graph see the old or the new content, never a mix; with ``--union-default-graph`` the
  staging triples are visible in the default graph while they load). Connection errors and 5xx
  answers are retried with exponential backoff, then reported with :class:`StoreUnavailableError`.

Clearing a graph before a re-load (both stores when the server is Oxigraph): Oxigraph's
``remove_graph`` / ``DROP GRAPH`` delete quad by quad at ~16k quads/s here, while one
``DELETE ... LIMIT`` per predicate of the graph (:func:`clear_graph_in_batches`) runs at ~50k/s
with bounded memory, so a re-load is no longer dominated by removing the old triples.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from tasks.config.linked_data import StoreConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT_BY_SUFFIX = {".nt": "nt", ".nq": "nq", ".ttl": "ttl"}
CONTENT_TYPES = {"nt": "application/n-triples", "nq": "application/n-quads", "ttl": "text/turtle"}


class StoreUnavailableError(ConnectionError):
    """The SPARQL server did not answer after all retries."""


class TripleStore(Protocol):
    """What the loader and the query runner need from a store."""

    def replace_graph(self, graph: str, rdf_file: Path, fmt: str) -> int:
        """Replace ``graph`` with the content of ``rdf_file``; return the graph's triple count."""
        ...

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a SPARQL query; SELECT gives an iterable of solutions."""
        ...

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


#: Quads removed per SPARQL update when a graph is cleared (bounds the update's memory).
CLEAR_BATCH_QUADS = 200_000


def clear_graph_in_batches(
    graph: str,
    query: Callable[[str], Any],
    update: Callable[[str], Any],
    batch: int = CLEAR_BATCH_QUADS,
) -> None:
    """Empty ``graph`` with one ``DELETE ... LIMIT batch`` per predicate, repeated while needed.

    ``query`` / ``update`` run SPARQL on the store (embedded or HTTP); ``graph`` is an IRI the
    caller has checked. Oxigraph's ``remove_graph`` / ``DROP GRAPH`` delete quad by quad (~11-16k
    quads/s here); these batches run at ~32-50k/s with bounded memory.
    """
    rows = query(f"SELECT DISTINCT ?p WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
    for predicate in [str(row["p"]) for row in rows]:
        pattern = f"GRAPH <{graph}> {{ ?s {predicate} ?o }}"
        delete = (
            f"DELETE {{ {pattern} }} WHERE {{ SELECT ?s ?o WHERE {{ {pattern} }} LIMIT {batch} }}"
        )
        update(delete)
        while bool(query(f"ASK {{ {pattern} }}")):
            update(delete)


def _rdf_format(fmt: str) -> Any:
    import pyoxigraph as ox

    return {"nt": ox.RdfFormat.N_TRIPLES, "nq": ox.RdfFormat.N_QUADS, "ttl": ox.RdfFormat.TURTLE}[
        fmt
    ]


class EmbeddedStore:
    """A persistent pyoxigraph store in a folder (in memory when ``path`` is None)."""

    def __init__(self, path: str | Path | None, read_only: bool = False) -> None:
        import pyoxigraph as ox

        self.path = path
        if path is None:
            self.store = ox.Store()
        elif read_only:
            self.store = ox.Store.read_only(str(path))
        else:
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                self.store = ox.Store(str(path))
            except OSError as err:
                raise OSError(
                    f"cannot open the embedded triple store {path}: {err}. Another process "
                    "(a load, `eeflow rdf serve`) may hold it; stop it or use store.mode: http"
                ) from err

    def replace_graph(self, graph: str, rdf_file: Path, fmt: str) -> int:
        """Remove ``graph`` and bulk-load the file into it (N-Quads keep their own graph IRIs)."""
        import pyoxigraph as ox

        node = ox.NamedNode(graph)
        if self.store.contains_named_graph(node):
            self.clear_graph(graph)
        self.store.bulk_load(
            path=str(rdf_file), format=_rdf_format(fmt), to_graph=None if fmt == "nq" else node
        )
        self.store.flush()
        return self.graph_size(graph)

    def clear_graph(self, graph: str, batch: int = CLEAR_BATCH_QUADS) -> None:
        """Remove every quad of ``graph`` and the graph itself (batched, see the module doc)."""
        import pyoxigraph as ox

        node = ox.NamedNode(graph)
        started = time.perf_counter()
        clear_graph_in_batches(graph, self.store.query, self.store.update, batch)
        self.store.remove_graph(node)  # now empty: drops the graph name only
        log.info("cleared <%s> in %.1fs", graph, time.perf_counter() - started)

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        result = self.store.query(
            f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"
        )
        return int(next(iter(result))["n"].value)

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a query on the store (union of all graphs as default graph)."""
        kwargs.setdefault("use_default_graph_as_union", True)
        return self.store.query(sparql, **kwargs)

    def close(self) -> None:
        """Flush and release the store's lock."""
        if self.path is not None and hasattr(self, "store"):
            try:
                self.store.flush()
            except OSError:
                pass
        self.store = None  # type: ignore[assignment]


def with_retries(
    action: Callable[[], T], *, what: str, url: str, retries: int, backoff_s: float
) -> T:
    """Run ``action``; on connection errors / 5xx retry ``retries`` times with doubling backoff."""
    import requests

    for attempt in itertools.count():
        try:
            return action()
        except (requests.ConnectionError, requests.Timeout, _ServerError) as err:
            if attempt >= retries:
                raise StoreUnavailableError(
                    f"{what}: SPARQL store {url} unreachable after {attempt + 1} attempts ({err}); "
                    "start it (`eeflow rdf serve`) or fix linked_data store.url"
                ) from err
            delay = backoff_s * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1fs", what, err, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class _ServerError(RuntimeError):
    """A 5xx answer (worth retrying)."""


def _check(response: Any, what: str) -> Any:
    if response.status_code >= 500:
        raise _ServerError(f"{response.status_code} {response.text[:300]}")
    if response.status_code >= 400:
        raise ValueError(
            f"{what}: the store answered {response.status_code}: {response.text[:500]}"
        )
    return response


def count_lines_up_to(path: Path, limit: int) -> int:
    """Count the lines of ``path``, stopping once ``limit`` is reached (returns at most limit)."""
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            count += block.count(b"\n")
            if count >= limit:
                return limit
    return count


def iter_line_chunks(stream: BinaryIO, lines_per_chunk: int) -> Iterator[bytes]:
    """Cut an N-Triples/N-Quads stream into chunks of whole lines."""
    while True:
        chunk = list(itertools.islice(stream, lines_per_chunk))
        if not chunk:
            return
        yield b"".join(chunk)


class HttpStore:
    """A SPARQL 1.1 server (Graph Store Protocol + Update + Query over HTTP)."""

    def __init__(self, cfg: StoreConfig) -> None:
        import requests

        self.cfg = cfg
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(cfg.parallel_requests, 4))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _post(self, url: str, what: str, **kwargs: Any) -> Any:
        def action() -> Any:
            return _check(self.session.post(url, timeout=self.cfg.timeout_s, **kwargs), what)

        return with_retries(
            action, what=what, url=url, retries=self.cfg.retries, backoff_s=self.cfg.backoff_s
        )

    def update(self, sparql: str) -> None:
        """Run a SPARQL 1.1 Update."""
        self._post(
            self.cfg.endpoint("update"),
            "SPARQL update",
            data=sparql.encode(),
            headers={"Content-Type": "application/sparql-update"},
        )

    def replace_graph(self, graph: str, rdf_file: Path, fmt: str) -> int:
        """Replace ``graph`` by the file (see ``store.replace``); return the graph's size."""
        import pyoxigraph as ox

        ox.NamedNode(graph)  # validates the IRI before it goes into the update text
        if self.cfg.replace == "staging_move" and fmt != "nq":
            staging = f"{graph}/staging"
            self.update(f"DROP SILENT GRAPH <{staging}>")
            self.post_file(staging, rdf_file, fmt)
            self.update(f"MOVE SILENT GRAPH <{staging}> TO GRAPH <{graph}>")
        elif self.cfg.atomic_max_triples > 0 and (
            fmt == "ttl"
            or (
                fmt == "nt"
                and count_lines_up_to(rdf_file, self.cfg.atomic_max_triples + 1)
                <= self.cfg.atomic_max_triples
            )
        ):
            self.put_graph(graph, rdf_file, fmt)
        else:
            self.drop_graph(graph)
            self.post_file(graph, rdf_file, fmt)
        return self.graph_size(graph)

    def put_graph(self, graph: str, rdf_file: Path, fmt: str) -> None:
        """Replace ``graph`` by the file in one Graph Store PUT (one transaction on Oxigraph)."""
        url = self.cfg.endpoint("store")

        def action() -> Any:
            with rdf_file.open("rb") as body:
                return _check(
                    self.session.put(
                        url,
                        params={"graph": graph},
                        data=body,
                        headers={"Content-Type": CONTENT_TYPES[fmt]},
                        timeout=self.cfg.timeout_s,
                    ),
                    f"replace <{graph}> with {rdf_file}",
                )

        with_retries(
            action,
            what=f"PUT {rdf_file}",
            url=url,
            retries=self.cfg.retries,
            backoff_s=self.cfg.backoff_s,
        )

    def drop_graph(self, graph: str) -> None:
        """Empty and drop ``graph``: batched deletes on Oxigraph (``oxigraph_bulk``), else DROP."""
        if self.cfg.oxigraph_bulk:
            clear_graph_in_batches(graph, self.query, self.update)
        self.update(f"DROP SILENT GRAPH <{graph}>")

    def post_file(self, graph: str, rdf_file: Path, fmt: str) -> None:
        """POST the file into ``graph`` (N-Quads: their own graphs) in parallel line chunks."""
        url = self.cfg.endpoint("store")
        params = {} if fmt == "nq" else {"graph": graph}
        headers = {"Content-Type": CONTENT_TYPES[fmt]}
        if fmt == "ttl":
            self._post(
                url, f"load {rdf_file}", params=params, headers=headers, data=rdf_file.read_bytes()
            )
            return
        if self.cfg.oxigraph_bulk:
            params = {**params, "no_transaction": "", "lenient": ""}
        from tqdm import tqdm

        pending: set[Future[Any]] = set()
        with (
            ThreadPoolExecutor(self.cfg.parallel_requests) as pool,
            rdf_file.open("rb") as fh,
            tqdm(
                total=rdf_file.stat().st_size,
                desc=f"load {rdf_file.name}",
                unit="B",
                unit_scale=True,
                mininterval=2.0,
                leave=False,
            ) as progress,
        ):
            for index, chunk in enumerate(iter_line_chunks(fh, self.cfg.chunk_triples)):
                if len(pending) >= 2 * self.cfg.parallel_requests:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                progress.update(len(chunk))
                pending.add(
                    pool.submit(
                        self._post,
                        url,
                        f"load {rdf_file} chunk {index}",
                        params=params,
                        headers=headers,
                        data=chunk,
                    )
                )
            for future in pending:
                future.result()

    def query(self, sparql: str, **kwargs: Any) -> Any:
        """Run a query; SELECT/ASK answers are parsed into pyoxigraph solutions."""
        import pyoxigraph as ox

        if kwargs.get("custom_functions"):
            raise ValueError(
                "this query needs eeflow's custom GeoSPARQL functions, which run only on the "
                "embedded store; query the embedded store, or fetch candidates from the server"
            )
        response = self._post(
            self.cfg.endpoint("query"),
            "SPARQL query",
            data={"query": sparql},
            headers={"Accept": "application/sparql-results+json"},
        )
        return ox.parse_query_results(response.content, ox.QueryResultsFormat.JSON)

    def graph_size(self, graph: str) -> int:
        """Count the triples in ``graph``."""
        rows = list(
            self.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
        )
        return int(rows[0]["n"].value)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def open_store(cfg: Any, read_only: bool = False) -> TripleStore:
    """Open the configured store (``cfg`` is a LinkedDataConfig)."""
    if cfg.store.mode == "http":
        return HttpStore(cfg.store)
    path = Path(cfg.store.path)
    if not path.is_absolute():
        path = cfg.resolved_root() / path
    return EmbeddedStore(path, read_only=read_only)


def load_product(
    cfg: Any,
    product: str,
    run_key: str,
    rdf_path: str | Path | None = None,
    graph: str | None = None,
    store: TripleStore | None = None,
) -> dict[str, Any]:
    """Load an exported product run into its named graph, replacing what that graph held.

    Args:
        cfg: a validated LinkedDataConfig (store mode, paths, HTTP settings).
        product: the product type.
        run_key: which export (``{root}/linked_data/rdf/{run_key}/{product}/``).
        rdf_path: the RDF file; default: the one named in that folder's manifest.
        graph: the named graph; default: the graph IRI in the export's manifest.
        store: an open store to use (default: open the configured one and close it after).

    Returns:
        ``{"graph": IRI, "triples": graph size after the load, "seconds": s, "store": ...}``.

    """
    from tasks.storage import read_manifest, stage_dir

    export_dir = stage_dir(cfg.resolved_root(), "linked_data", "rdf", run_key) / product
    if rdf_path is None or graph is None:
        manifest = read_manifest(export_dir)
        rdf_path = rdf_path or export_dir / manifest["rdf_file"]
        graph = graph or manifest["graph"]
    rdf_file = Path(rdf_path)
    if not rdf_file.is_file():
        raise FileNotFoundError(
            f"RDF file {rdf_file} does not exist; run `eeflow rdf export` first"
        )
    fmt = FORMAT_BY_SUFFIX.get(rdf_file.suffix)
    if fmt is None:
        raise ValueError(f"{rdf_file}: unknown RDF suffix; allowed: {sorted(FORMAT_BY_SUFFIX)}")
    own = store is None
    target = store or open_store(cfg)
    started = time.perf_counter()
    try:
        triples = target.replace_graph(graph, rdf_file, fmt)
    finally:
        if own:
            target.close()
    seconds = time.perf_counter() - started
    log.info("loaded %s triples into <%s> in %.2fs (%s)", triples, graph, seconds, cfg.store.mode)
    return {
        "graph": graph,
        "triples": triples,
        "seconds": round(seconds, 3),
        "store": cfg.store.mode,
        "rdf": str(rdf_file),
    }
