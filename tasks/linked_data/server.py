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
  graph does not exist), ``PUT`` (replace, one transaction), ``POST`` (add), ``DELETE``. Written
  triples are entailed into ``{graph}/entailed`` in the same transaction.

Queries without ``GRAPH`` see the union of all graphs (as ``oxigraph serve
--union-default-graph``). It binds 127.0.0.1 unless told otherwise. Start one by hand with::

    eeflow rdf serve --config configs/linked_data.yaml          # store folder from the config
    eeflow rdf serve --engine oxigraph                           # plain `oxigraph serve` instead

then set ``store.mode: http`` (``store.url: http://127.0.0.1:7878``) in
configs/linked_data.yaml. :class:`OxigraphServer` starts the plain binary (tests, baselines).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tasks.net import free_port

log = logging.getLogger(__name__)


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

    def start(self, timeout_s: float = 30.0) -> OxigraphServer:
        """Start the server and wait until it accepts connections."""
        command = [
            oxigraph_binary(),
            "serve",
            "--union-default-graph",
            "--bind",
            f"{self.host}:{self.port}",
        ]
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        log.info("starting %s", " ".join(command))
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"oxigraph serve exited with {self.process.returncode}: {error}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"oxigraph serve did not listen on {self.url} within {timeout_s}s")

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
    """The endpoint's logic on one pyoxigraph store (no HTTP): query, update, graph store."""

    def __init__(self, store: Any, rewrite: bool = True, entail: bool = True) -> None:
        self.store = store
        self.rewrite = rewrite
        self.entail = entail

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

    def _parse(self, body: bytes, content_type: str, graph: Any) -> list[Any]:
        import pyoxigraph as ox

        media = content_type.split(";")[0].strip().lower()
        name = RDF_FORMATS.get(media)
        if name is None:
            raise RequestError(
                415, f"unsupported RDF media type {media!r}; use one of {list(RDF_FORMATS)}"
            )
        try:
            return list(ox.parse(body, format=getattr(ox.RdfFormat, name)))
        except SyntaxError as err:
            raise RequestError(400, f"the {media} body does not parse: {err}") from None

    def _write(self, graph: Any, statements: list[Any], replace: bool) -> None:
        """Replace or extend ``graph`` (and its entailment) in one update = one transaction."""
        import pyoxigraph as ox

        from tasks.linked_data.geosparql.entailment import (
            STAGING_SUFFIX,
            entail,
            entailed_graph,
        )

        named = isinstance(graph, ox.NamedNode)
        triples = [s.triple if isinstance(s, ox.Quad) else s for s in statements]
        parts = []
        target = f"GRAPH <{graph.value}> " if named else ""
        companion = None
        if named and self.entail and not graph.value.endswith(STAGING_SUFFIX):
            companion = entailed_graph(graph.value)
        if replace:
            parts.append(f"DROP SILENT GRAPH <{graph.value}>" if named else "DROP SILENT DEFAULT")
            if companion:
                parts.append(f"DROP SILENT GRAPH <{companion}>")
        body = "\n".join(f"{t} ." for t in triples)
        data = f"{target}{{\n{body}\n}}" if named else body
        if companion:
            entailed = entail(triples)
            if not replace:
                entailed = {
                    t for t in entailed
                    if ox.Quad(t.subject, t.predicate, t.object, graph) not in self.store
                }
            if entailed:
                lines = "\n".join(f"{t} ." for t in entailed)
                data += f"\nGRAPH <{companion}> {{\n{lines}\n}}"
        parts.append(f"INSERT DATA {{\n{data}\n}}")
        self.store.update(" ;\n".join(parts))

    def graph_store(self, method: str, params: dict[str, list[str]], body: bytes,
                    content_type: str, accept: str) -> tuple[int, str, bytes]:
        """Serve one Graph Store Protocol request; return (status, content type, body)."""
        import pyoxigraph as ox

        graph = self._graph(params)
        named = isinstance(graph, ox.NamedNode)
        exists = (not named) or self.store.contains_named_graph(graph)
        if method == "GET":
            if not exists:
                raise RequestError(404, f"graph <{graph.value}> does not exist")
            media, name = _negotiate(accept, RDF_FORMATS, "N_TRIPLES")
            if name == "N_QUADS":
                media, name = "application/n-triples", "N_TRIPLES"
            triples = [q.triple for q in self.store.quads_for_pattern(None, None, None, graph)]
            return 200, media, ox.serialize(triples, format=getattr(ox.RdfFormat, name)) or b""
        if method == "DELETE":
            if not exists:
                raise RequestError(404, f"graph <{graph.value}> does not exist")
            from tasks.linked_data.geosparql.entailment import entailed_graph

            if named:
                self.store.update(
                    f"DROP GRAPH <{graph.value}> ; "
                    f"DROP SILENT GRAPH <{entailed_graph(graph.value)}>"
                )
            else:
                self.store.update("DROP DEFAULT")
            return 204, "text/plain", b""
        if method in ("PUT", "POST"):
            statements = self._parse(body, content_type, graph)
            if any(isinstance(s, ox.Quad) and s.graph_name != ox.DefaultGraph()
                   for s in statements):
                raise RequestError(400, "Graph Store bodies hold triples (N-Quads to /store with "
                                   "no graph are not supported); name the graph with ?graph=")
            self._write(graph, statements, replace=method == "PUT")
            return (201 if not exists else 204), "text/plain", b""
        raise RequestError(405, f"method {method} not allowed on the graph store")


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
           body: bytes, content_type: str, accept: str) -> tuple[int, str, bytes]:
    """Answer one request to /query, /update or /store: (status, media type, body)."""
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
    if path == "/store":
        return service.graph_store(command, params, body, content_type, accept)
    raise RequestError(404, f"no such endpoint {path}; use /query, /update or /store")


def _handler(service: SparqlService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "eeflow-sparql/1"
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers + body leave in one write (flushed after each request)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # the base class names it format
            log.debug("%s " + format, self.address_string(), *args)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query, keep_blank_values=True)
            body = self._body()
            try:
                self._answer(*_route(service, self.command, url.path, params, body,
                                     self.headers.get("Content-Type", ""),
                                     self.headers.get("Accept", "")))
            except RequestError as err:
                self._answer(err.status, "text/plain; charset=utf-8", str(err).encode())
            except Exception as err:  # a server answers, never dies on a request
                log.exception("SPARQL server error on %s %s", self.command, self.path)
                self._answer(500, "text/plain; charset=utf-8", f"{type(err).__name__}: {err}"
                             .encode())

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
        import pyoxigraph as ox

        self.location = Path(location) if location is not None else None
        self.host = host
        self.port = port or free_port(host)
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
            try:
                store = ox.Store(str(self.location))
            except OSError as err:
                raise OSError(
                    f"cannot open the store folder {self.location}: {err}; another process "
                    "(a load, a server) holds it: stop it or choose another --location"
                ) from err
        else:
            store = ox.Store()
        self.store = store
        self.service = SparqlService(store, rewrite=rewrite, entail=entail)
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (``/query``, ``/update``, ``/store`` below it)."""
        return f"http://{self.host}:{self.port}"

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
        if self.location is not None:
            self.store.flush()

    def __enter__(self) -> SparqlServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
