import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from typer.testing import CliRunner

from tasks.experiments.cli import app
from tasks.experiments.spaces import SearchSpaceError


@pytest.fixture()
def polar_config(tmp_path):
    path = tmp_path / "polar.yaml"
    path.write_text(f"use_case: polar\ndata_root: {tmp_path / 'data'}\n")
    return path


def test_search_with_empty_space_fails_clearly(polar_config):
    result = CliRunner().invoke(app, ["search", "--config", str(polar_config)])
    assert isinstance(result.exception, SearchSpaceError)
    assert "search.space is empty" in str(result.exception)


def test_dashboard_serves_the_study_on_localhost(finished_search, monkeypatch):
    import optuna_dashboard

    from tasks.experiments.search import open_storage, storage_url

    cfg, _ = finished_search
    calls = {}
    monkeypatch.setattr(optuna_dashboard, "run_server",
                        lambda storage, host, port: calls.update(host=host, port=port))
    # the command wires the config's storage into optuna-dashboard ...
    from tasks.experiments import cli

    monkeypatch.setattr(cli, "_cfg", lambda path, set_: cfg)
    result = CliRunner().invoke(app, ["dashboard", "--config", "x.yaml", "--port", "8999"])
    assert result.exit_code == 0, result.output
    assert calls == {"host": "127.0.0.1", "port": 8999}
    # ... and the dashboard really lists the study (WSGI app on 127.0.0.1, stopped at the end)
    wsgi_app = optuna_dashboard.wsgi(open_storage(storage_url(cfg), cfg.search))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/studies"
        studies = json.loads(urllib.request.urlopen(url, timeout=30).read())["study_summaries"]
    finally:
        server.shutdown()
        server.server_close()
    assert [s["study_name"] for s in studies] == ["toy-search"]
