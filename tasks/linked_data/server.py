"""SPARQL servers: eeflow's own GeoSPARQL endpoint on pyoxigraph, and plain ``oxigraph serve``.

``eeflow rdf serve`` runs :class:`SparqlServer`: a SPARQL 1.1 Protocol endpoint on a pyoxigraph
store that carries eeflow's GeoSPARQL (every ``geof:`` function for WKT and GML in any CRS, the
query-rewrite extension, entailment of Graph Store writes; see ``tasks/linked_data/geosparql``),
which the ``oxigraph serve`` binary cannot load. Same paths as Oxigraph's server, so
:class:`~tasks.linked_data.store.HttpStore` and any SPARQL client work unchanged:

* ``/query`` - SPARQL 1.1 Query: ``GET ?query=``, ``POST`` form (``query=``) or
  ``application/sparql-query``; ``default-graph-uri`` / ``named-graph-uri``; results as SPARQL
  JSON (default), XML, CSV or TSV, graphs as N-Triples, Turtle or RDF/XML (``Accept``).
* ``/update`` - SPARQL 1.1 Update: ``POST`` form (``update=``) or ``application/sparql-update``.
* ``/store`` - Graph Store Protocol on ``?graph=IRI`` (or ``?default``): ``GET`` (404 when the
  graph does not exist), ``PUT`` (replace, atomic), ``POST`` (add; one transaction, or Oxigraph's
  ``?no_transaction`` bulk write, not atomic, for first loads), ``DELETE``. Written triples are
  entailed into ``{graph}/entailed`` in the same step.

A ``PUT`` of at least ``REBUILD_PUT_MIN_STATEMENTS`` triples over a graph that holds data is a
re-load: it goes through :meth:`EmbeddedStore.replace_graph
<tasks.linked_data.store.EmbeddedStore.replace_graph>` with the graph and its entailment
companion, whose cost model applies the difference in one transaction or, when most triples
changed, rebuilds the store with bulk loads in a sibling folder and swaps it in whole (queries in
flight finish on the old store, new ones wait for the swap; writes are serialised meanwhile). Either
way readers see the old or the new graph, never a mix, and a ``kill -9`` leaves one complete store.
Every answer carries ``Eeflow-Graph-Store: rebuild`` so that :class:`~tasks.linked_data.store.
HttpStore` sends such a re-load as one PUT instead of a SPARQL update of the difference (which
Oxigraph applies quad by quad, ~7x a bulk load). Bodies above ``SPOOL_BODY_BYTES`` are spooled to a
file beside the store, not held in memory. The rebuilt store is swapped in by renaming its sibling
folder, so the store folder must not be a mount point: give a folder inside the volume
(docker-compose.yaml: ``--location /opt/eeflow/triplestore/store``).

Queries without ``GRAPH`` see the union of all graphs (as ``oxigraph serve
--union-default-graph``). It binds 127.0.0.1 unless told otherwise. Start one by hand with::

    eeflow rdf serve --config configs/linked_data.yaml          # store folder from the config
    eeflow rdf serve --engine oxigraph                           # plain `oxigraph serve` instead

then set ``store.mode: http`` (``store.url: http://127.0.0.1:7878``) in
configs/linked_data.yaml. :class:`OxigraphServer` starts the plain binary (tests, baselines).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tasks.linked_data.memory import gc_paused
from tasks.linked_data.store import REBUILD_HEADER, EmbeddedStore
from tasks.net import free_port

log = logging.getLogger(__name__)

#: A Graph Store PUT of at least this many triples into a graph that holds data is re-loaded
#: through the embedded store's cost model (difference or rebuild + swap); smaller ones (a daily
#: chart) stay one transaction.
REBUILD_PUT_MIN_STATEMENTS = 20_000
#: Graph Store bodies above this many bytes are spooled to a file instead of kept in memory.
SPOOL_BODY_BYTES = 16 * 1024 * 1024


def oxigraph_binary() -> str:
    """Path of the ``oxigraph`` executable (beside the Python interpreter, or on PATH)."""
    beside = Path(sys.executable).with_name("oxigraph")
    if beside.is_file():
        return str(beside)
    found = shutil.which("oxigraph")
    if not found:
        raise FileNotFoundError(
            "the `oxigraph` server binary is not installed; pip install oxigraph "
            "(the Python package ships the Oxigraph CLI)"
        )
    return found


class OxigraphServer:
    """An ``oxigraph serve`` child process; use as a context manager, or start()/stop()."""

    def __init__(
        self, location: str | Path | None, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.location = Path(location) if location is not None else None
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL (``/query``, ``/update``, ``/store`` below it)."""
        return f"http://{self.host}:{self.port}"

    #: what the server is called in messages
    name = "oxigraph serve"
    #: keep its stderr for the error of a failed start (False: inherit this process's)
    capture_stderr = True

    def _command(self) -> list[str]:
        command = [
            oxigraph_binary(),
            "serve",
            "--union-default-graph",
            "--bind",
            f"{self.host}:{self.port}",
        ]
        if self.location is not None:
            command += ["--location", str(self.location)]
        return command

    def start(self, timeout_s: float = 30.0) -> OxigraphServer:
        """Start the server and wait until it accepts connections."""
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
        command = self._command()
        log.info("starting %s", " ".join(command))
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if self.capture_stderr else None,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {error}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} did not listen on {self.url} within {timeout_s}s")

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> OxigraphServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EeflowServerProcess(OxigraphServer):
    """:class:`SparqlServer` (``eeflow rdf serve``) as a child process.

    Its CPU and memory stay apart from the client's (benchmarks); the interface is
    :class:`OxigraphServer`'s. Its log goes to this process's stderr (a pipe nobody reads would
    fill and stall it).
    """

    name = "eeflow rdf serve"
    capture_stderr = False

    def _command(self) -> list[str]:
        code = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
                "from tasks.linked_data.server import SparqlServer; "
                "SparqlServer(sys.argv[1] or None, sys.argv[2], int(sys.argv[3])).serve_forever()")
        location = "" if self.location is None else str(self.location)
        return [sys.executable, "-c", code, location, self.host, str(self.port)]


#: Accept media type -> pyoxigraph results format name (SELECT / ASK).
RESULT_FORMATS = {
    "application/sparql-results+json": "JSON",
    "application/json": "JSON",
    "application/sparql-results+xml": "XML",
    "application/xml": "XML",
    "text/csv": "CSV",
    "text/tab-separated-values": "TSV",
}
#: Media type -> pyoxigraph RDF format name (CONSTRUCT / DESCRIBE, Graph Store).
RDF_FORMATS = {
    "application/n-triples": "N_TRIPLES",
    "text/plain": "N_TRIPLES",
    "text/turtle": "TURTLE",
    "application/x-turtle": "TURTLE",
    "application/rdf+xml": "RDF_XML",
    "application/n-quads": "N_QUADS",
}


class RequestError(ValueError):
    """A client error: answered with its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _negotiate(accept: str, table: dict[str, str], default: str) -> tuple[str, str]:
    """Pick (media type, format name) from an Accept header (first listed match wins)."""
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in table:
            return media, table[media]
        if media in ("*/*", "application/*", "text/*", ""):
            break
    media = next(m for m, f in table.items() if f == default)
    return media, default


class SparqlService:
    """The endpoint's logic on one pyoxigraph store (no HTTP): query, update, graph store.

    ``store``: a raw ``pyoxigraph.Store``, or an :class:`~tasks.linked_data.store.EmbeddedStore`
    (what :class:`SparqlServer` passes), which adds the re-load of big PUTs (see the module doc).
    """

    def __init__(self, store: Any, rewrite: bool = True, entail: bool = True,
                 spool_dir: Path | None = None) -> None:
        self.holder: EmbeddedStore | None = store if isinstance(store, EmbeddedStore) else None
        self._raw = None if self.holder is not None else store
        self.rewrite = rewrite
        self.entail = entail
        self.spool_dir = spool_dir
        #: writes run one at a time: a re-load that rebuilds the store copies the other graphs
        #: from the live one, so no update may land there meanwhile
        self.writes = threading.RLock()

    @property
    def store(self) -> Any:
        """The live ``pyoxigraph.Store`` (a new object after a re-load swapped a rebuilt one in)."""
        return self.holder.store if self.holder is not None else self._raw

    @property
    def rebuilds(self) -> bool:
        """Whether a big PUT over a graph with data may rebuild the store (see the module doc)."""
        return self.holder is not None

    def query(self, sparql: str, accept: str, default_graphs: list[str],
              named_graphs: list[str]) -> tuple[str, bytes]:
        """Run a query; return (content type, body)."""
        import pyoxigraph as ox

        from tasks.linked_data.geosparql import engine

        kwargs: dict[str, Any] = {}
        if default_graphs:
            kwargs["default_graph"] = [ox.NamedNode(g) for g in default_graphs]
            kwargs["use_default_graph_as_union"] = False
        if named_graphs:
            kwargs["named_graphs"] = [ox.NamedNode(g) for g in named_graphs]
        try:
            result = engine.query(self.store, sparql, rewrite=self.rewrite, **kwargs)
        except SyntaxError as err:
            raise RequestError(400, f"SPARQL syntax error: {err}") from None
        if isinstance(result, ox.QueryTriples):
            media, name = _negotiate(accept, RDF_FORMATS, "N_TRIPLES")
            return media, result.serialize(format=getattr(ox.RdfFormat, name)) or b""
        media, name = _negotiate(accept, RESULT_FORMATS, "JSON")
        return media, result.serialize(format=getattr(ox.QueryResultsFormat, name)) or b""

    def update(self, sparql: str) -> None:
        """Run an update (GeoSPARQL functions available)."""
        from tasks.linked_data.geosparql import engine

        with self.writes:
            try:
                engine.update(self.store, sparql)
            except SyntaxError as err:
                raise RequestError(400, f"SPARQL update syntax error: {err}") from None

    def _graph(self, params: dict[str, list[str]]) -> Any:
        import pyoxigraph as ox

        if "default" in params:
            return ox.DefaultGraph()
        names = params.get("graph")
        if not names:
            raise RequestError(400, "Graph Store request needs ?graph=IRI or ?default")
        try:
            return ox.NamedNode(names[0])
        except ValueError as err:
            raise RequestError(400, f"graph {names[0]!r} is not an IRI: {err}") from None

    def _reader(self, body: bytes | Path, content_type: str) -> Callable[[], Iterator[Any]]:
        """Return a function that parses the body (again at each call) into triples.

        Raises:
            RequestError: 415 for a media type that is not RDF; 400 (while reading) for a syntax
                error or a quad in a named graph.

        """
        import pyoxigraph as ox

        media = content_type.split(";")[0].strip().lower()
        name = RDF_FORMATS.get(media)
        if name is None:
            raise RequestError(
                415, f"unsupported RDF media type {media!r}; use one of {list(RDF_FORMATS)}"
            )
        fmt = getattr(ox.RdfFormat, name)
        source = {"path": str(body)} if isinstance(body, Path) else {"input": body}

        def read() -> Iterator[Any]:
            try:
                for statement in ox.parse(format=fmt, **source):
                    if not isinstance(statement, ox.Quad):
                        yield statement
                    elif statement.graph_name == ox.DefaultGraph():
                        yield statement.triple
                    else:
                        raise RequestError(
                            400, "Graph Store bodies hold triples (N-Quads to /store with no "
                            "graph are not supported); name the graph with ?graph="
                        )
            except SyntaxError as err:
                raise RequestError(400, f"the {media} body does not parse: {err}") from None

        return read

    @staticmethod
    def _scan(read: Callable[[], Iterator[Any]]) -> tuple[int, bool]:
        """Check the whole body before anything is written: (triples, any blank node)."""
        from tasks.linked_data.load_record import has_blank_node

        count, blank = 0, False
        for t in read():
            count += 1
            blank = blank or has_blank_node(t)
        return count, blank

    def _companion(self, graph: Any) -> str | None:
        """Name the entailment graph written with ``graph`` (None: default graph, staging, off)."""
        import pyoxigraph as ox

        from tasks.linked_data.geosparql.entailment import STAGING_SUFFIX, entailed_graph

        if isinstance(graph, ox.NamedNode) and self.entail and not graph.value.endswith(
            STAGING_SUFFIX
        ):
            return entailed_graph(graph.value)
        return None

    def _entailed(self, graph: Any, triples: list[Any], replace: bool) -> set[Any]:
        """Entail ``triples`` (when added: only what ``graph`` does not assert already)."""
        import pyoxigraph as ox

        from tasks.linked_data.geosparql.entailment import entail

        entailed = entail(triples)
        if not replace:
            store = self.store
            entailed = {
                t for t in entailed if ox.Quad(t.subject, t.predicate, t.object, graph) not in store
            }
        return entailed

    def _write(self, graph: Any, triples: list[Any], replace: bool) -> None:
        """Replace or extend ``graph`` (and its entailment) in one update = one transaction."""
        import pyoxigraph as ox

        named = isinstance(graph, ox.NamedNode)
        parts = []
        target = f"GRAPH <{graph.value}> " if named else ""
        companion = self._companion(graph)
        if replace:
            parts.append(f"DROP SILENT GRAPH <{graph.value}>" if named else "DROP SILENT DEFAULT")
            if companion:
                parts.append(f"DROP SILENT GRAPH <{companion}>")
        body = "\n".join(f"{t} ." for t in triples)
        data = f"{target}{{\n{body}\n}}" if named else body
        if companion:
            entailed = self._entailed(graph, triples, replace)
            if entailed:
                lines = "\n".join(f"{t} ." for t in entailed)
                data += f"\nGRAPH <{companion}> {{\n{lines}\n}}"
        parts.append(f"INSERT DATA {{\n{data}\n}}")
        self.store.update(" ;\n".join(parts))

    def _quads(self, graph: Any, triples: Iterable[Any],
               entailed: Callable[[], Iterable[Any]]) -> Iterator[Any]:
        """Quads of ``triples`` in ``graph``, then of ``entailed()`` in its companion graph."""
        import pyoxigraph as ox

        for t in triples:
            yield ox.Quad(t.subject, t.predicate, t.object, graph)
        companion = self._companion(graph)
        if companion is not None:
            node = ox.NamedNode(companion)
            for t in entailed():
                yield ox.Quad(t.subject, t.predicate, t.object, node)

    def _bulk_add(self, graph: Any, triples: list[Any]) -> None:
        """Add ``triples`` (and their entailment) without a transaction (``?no_transaction``)."""
        self.store.bulk_extend(
            self._quads(graph, triples, lambda: self._entailed(graph, triples, replace=False))
        )

    def _reload(self, graph: Any, read: Callable[[], Iterator[Any]]) -> None:
        """Replace a graph that holds data through the embedded store's re-load (module doc).

        The body is parsed three times (here, for the entailment, to subtract what it asserts)
        rather than held: only the entailed triples stay in memory.
        """
        import pyoxigraph as ox

        from tasks.linked_data.geosparql.entailment import entail_rereading

        assert self.holder is not None
        companion = self._companion(graph)
        handle, name = tempfile.mkstemp(prefix="eeflow-put-", suffix=".nq", dir=self.spool_dir)
        os.close(handle)
        try:
            ox.serialize(self._quads(graph, read(), lambda: entail_rereading(read)),
                         output=name, format=ox.RdfFormat.N_QUADS)
            self.holder.replace_graph(
                graph.value, Path(name), "nq", also_replace=[companion] if companion else []
            )
        finally:
            Path(name).unlink(missing_ok=True)

    def _reloads(self, graph: Any, count: int, blank_nodes: bool) -> bool:
        """Whether a PUT of ``count`` triples goes through :meth:`_reload` (see the module doc)."""
        import pyoxigraph as ox

        if self.holder is None or not isinstance(graph, ox.NamedNode):
            return False
        if count < REBUILD_PUT_MIN_STATEMENTS or blank_nodes:
            return False  # blank nodes cannot be diffed: one transaction
        # a first load: one transaction, readers never see it fill
        return next(iter(self.store.quads_for_pattern(None, None, None, graph)), None) is not None

    def graph_store(self, method: str, params: dict[str, list[str]], body: bytes | Path,
                    content_type: str, accept: str) -> tuple[int, str, bytes]:
        """Serve one Graph Store Protocol request; return (status, content type, body)."""
        import pyoxigraph as ox

        graph = self._graph(params)
        named = isinstance(graph, ox.NamedNode)
        if method == "GET":
            store = self.store
            if named and not store.contains_named_graph(graph):
                raise RequestError(404, f"graph <{graph.value}> does not exist")
            media, name = _negotiate(accept, RDF_FORMATS, "N_TRIPLES")
            if name == "N_QUADS":
                media, name = "application/n-triples", "N_TRIPLES"
            triples = [q.triple for q in store.quads_for_pattern(None, None, None, graph)]
            return 200, media, ox.serialize(triples, format=getattr(ox.RdfFormat, name)) or b""
        if method not in ("PUT", "POST", "DELETE"):
            raise RequestError(405, f"method {method} not allowed on the graph store")
        read = self._reader(body, content_type) if method != "DELETE" else None
        # a PUT may re-load without holding the body: checked by a first pass; others are listed
        count, blank = self._scan(read) if read is not None and method == "PUT" else (0, False)
        with self.writes, gc_paused():  # entailment and quads: millions of acyclic objects
            exists = (not named) or self.store.contains_named_graph(graph)
            if method == "DELETE":
                if not exists:
                    raise RequestError(404, f"graph <{graph.value}> does not exist")
                from tasks.linked_data.geosparql.entailment import entailed_graph

                self.store.update(
                    f"DROP GRAPH <{graph.value}> ; "
                    f"DROP SILENT GRAPH <{entailed_graph(graph.value)}>"
                    if named else "DROP DEFAULT"
                )
                return 204, "text/plain", b""
            assert read is not None
            if method == "PUT" and self._reloads(graph, count, blank):
                self._reload(graph, read)
                return (201 if not exists else 204), "text/plain", b""
            triples = list(read())  # parsed in full before anything is written
            if method == "POST" and "no_transaction" in params:
                self._bulk_add(graph, triples)
            else:
                self._write(graph, triples, replace=method == "PUT")
            return (201 if not exists else 204), "text/plain", b""


def _form(body: bytes, content_type: str, params: dict[str, list[str]],
          key: str = "query") -> dict[str, list[str]]:
    """Query-string parameters, plus a form-encoded body or a raw SPARQL body as ``key``."""
    media = content_type.split(";")[0].strip().lower()
    form = dict(params)
    if media == "application/x-www-form-urlencoded":
        form.update(parse_qs(body.decode(), keep_blank_values=True))
    elif media in ("application/sparql-query", "application/sparql-update"):
        form[key] = [body.decode()]
    return form


def _route(service: SparqlService, command: str, path: str, params: dict[str, list[str]],
           body: bytes | Path, content_type: str, accept: str) -> tuple[int, str, bytes]:
    """Answer one request to /query, /update or /store: (status, media type, body).

    ``body`` is a file (a spooled Graph Store body, see ``SPOOL_BODY_BYTES``) only for /store.
    """
    if path == "/store":
        return service.graph_store(command, params, body, content_type, accept)
    if isinstance(body, Path):
        body = body.read_bytes()
    if path == "/query":
        form = _form(body, content_type, params)
        if "query" not in form:
            raise RequestError(400, "no query: send ?query=, a query= form field or "
                               "an application/sparql-query body")
        media, payload = service.query(
            form["query"][0], accept, form.get("default-graph-uri", []),
            form.get("named-graph-uri", []),
        )
        return 200, media, payload
    if path == "/update":
        if command != "POST":
            raise RequestError(405, "SPARQL updates are POSTed to /update")
        form = _form(body, content_type, params, key="update")
        if "update" not in form:
            raise RequestError(400, "no update: send an update= form field or an "
                               "application/sparql-update body")
        service.update(form["update"][0])
        return 204, "text/plain", b""
    raise RequestError(404, f"no such endpoint {path}; use /query, /update or /store")


def _spool(stream: Any, length: int, folder: Path | None) -> Path:
    """Copy a request body of ``length`` bytes into a new file in ``folder`` (caller deletes)."""
    handle, name = tempfile.mkstemp(prefix="eeflow-body-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as spool:
            left = length
            while left:
                block = stream.read(min(left, 1 << 20))
                if not block:
                    raise RequestError(
                        400, f"the request body ended after {length - left} of its {length} "
                        "bytes (Content-Length); send it again"
                    )
                spool.write(block)
                left -= len(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _handler(service: SparqlService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "eeflow-sparql/1"
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers + body leave in one write (flushed after each request)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
            log.debug("%s " + format, self.address_string(), *args)

        def _body(self, path: str) -> bytes | Path:
            length = int(self.headers.get("Content-Length") or 0)
            if path != "/store" or length <= SPOOL_BODY_BYTES:
                return self.rfile.read(length) if length else b""
            return _spool(self.rfile, length, service.spool_dir)

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if service.rebuilds:
                self.send_header(REBUILD_HEADER, "rebuild")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query, keep_blank_values=True)
            body: bytes | Path = b""
            try:
                body = self._body(url.path)
                self._answer(*_route(service, self.command, url.path, params, body,
                                     self.headers.get("Content-Type", ""),
                                     self.headers.get("Accept", "")))
            except RequestError as err:
                self._answer(err.status, "text/plain; charset=utf-8", str(err).encode())
            except Exception as err:  # a server answers, never dies on a request
                log.exception("SPARQL server error on %s %s", self.command, self.path)
                self._answer(500, "text/plain; charset=utf-8", f"{type(err).__name__}: {err}"
                             .encode())
            finally:
                if isinstance(body, Path):
                    body.unlink(missing_ok=True)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    return Handler


class SparqlServer:
    """eeflow's SPARQL endpoint on pyoxigraph (see the module doc): context manager or start()."""

    def __init__(
        self,
        location: str | Path | None,
        host: str = "127.0.0.1",
        port: int | None = None,
        rewrite: bool = True,
        entail: bool = True,
    ) -> None:
        self.location = Path(location) if location is not None else None
        self.host = host
        self.port = port or free_port(host)
        # the embedded store finishes a swap a crash interrupted and removes leftover folders
        self.holder = EmbeddedStore(self.location)
        spool = None if self.location is None else self.location.parent
        self.service = SparqlService(self.holder, rewrite=rewrite, entail=entail, spool_dir=spool)
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (``/query``, ``/update``, ``/store`` below it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> Any:
        """The live ``pyoxigraph.Store`` (a new object after a re-load swapped one in)."""
        return self.holder.store

    def _bind(self) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer((self.host, self.port), _handler(self.service))
        httpd.daemon_threads = True
        return httpd

    def start(self) -> SparqlServer:
        """Serve in a background thread (returns once the socket listens)."""
        self.httpd = self._bind()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"sparql-{self.port}", daemon=True
        )
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C or SIGTERM, e.g. a container stop)."""
        import signal

        def interrupt(_signum: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, interrupt)
        self.httpd = self._bind()
        try:
            self.httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and flush the store."""
        if self.httpd is not None:
            if self.thread is not None:
                self.httpd.shutdown()
                self.thread.join(timeout=10)
            self.httpd.server_close()
            self.httpd = None
            self.thread = None
        self.holder.close()

    def __enter__(self) -> SparqlServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
