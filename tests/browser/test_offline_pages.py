"""/docs, /redoc and the report's map.html show their content in a browser with no network."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from heimdall.evaluation.interactive_map import write_map_html
from heimdall.service import create_app
from heimdall.settings import Settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real app served by uvicorn on a free loopback port (embedded jobs, no token)."""
    for name in ("HEIMDALL_BROKER_URL", "HEIMDALL_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = _free_port()
    config = uvicorn.Config(create_app(Settings()), host="127.0.0.1", port=port, log_level="warning")
    app_server = uvicorn.Server(config)
    thread = threading.Thread(target=app_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app_server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    app_server.should_exit = True
    thread.join(timeout=10)


def test_docs_pages_reference_only_this_server(server: str) -> None:
    for page in ("/docs", "/redoc"):
        body = httpx.get(server + page).text
        assert not re.search(r"""(src|href)=["']https?://""", body), f"{page} loads from another host"
    script = httpx.get(server + "/static/docs/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 500_000
    assert httpx.get(server + "/static/docs/redoc.standalone.js").status_code == 200


def test_swagger_ui_renders_operations_offline(server: str, dump_dom: Callable[[str], str]) -> None:
    dom = dump_dom(server + "/docs")
    # Swagger UI draws one "opblock" per operation once its script has loaded the schema.
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert "/v1/localize" in paths and "/health" in paths, sorted(paths)[:20]
    assert len(paths) >= 10


def test_redoc_renders_operations_offline(server: str, dump_dom: Callable[[str], str]) -> None:
    dom = dump_dom(server + "/redoc")
    assert 'class="redoc-wrap' in dom or "redoc-wrap" in dom, dom[:500]
    assert "/v1/localize" in dom and "Heimdall" in dom


def _predictions(n: int) -> dict:
    """A FeatureCollection like the report's: errors 1..n km, ellipses as small squares."""
    features = []
    for i in range(n):
        lat, lon = 45.0 + 0.01 * i, 9.0 + 0.01 * (i % 7)
        props = {"sample_id": f"s{i:03d}", "truth_lat": lat + 0.005, "truth_lon": lon, "error_m": 1000.0 * (i + 1), "n_receivers_heard": 3 + i % 4}
        ring = [[lon - 0.01, lat - 0.01], [lon + 0.01, lat - 0.01], [lon + 0.01, lat + 0.01], [lon - 0.01, lat + 0.01], [lon - 0.01, lat - 0.01]]
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": dict(props, kind="position")})
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": dict(props, kind="ellipse_1sigma")})
    return {"type": "FeatureCollection", "features": features}


RECEIVERS = [("Torino-SDR", 45.07, 7.69), ("Milano-SDR", 45.46, 9.19), ("Genova-SDR", 44.41, 8.93)]


def test_map_html_renders_offline(tmp_path: Path, dump_dom: Callable[[str], str]) -> None:
    page = write_map_html(tmp_path / "map.html", _predictions(100), RECEIVERS, per_group=10)
    dom = dump_dom(page.as_uri())
    for name, _, _ in RECEIVERS:
        assert f">{name}</text>" in dom, f"receiver {name} is not labelled"
    assert 'id="legend"' in dom and "1-sigma ellipse" in dom and "true transmitter position" in dom
    # The script ran (no network needed): it counts the cases drawn by default.
    assert '<span id="shown">30 cases drawn</span>' in dom
    # The worst, median and best ten by error, with their ellipses; every case behind a switch.
    assert dom.count("prediction, sample") == 30 + 100
    assert dom.count('class="ellipse"') == 30
    worst = re.search(r'<g id="cases-worst"[^>]*>(.*?)</g>', dom, flags=re.S)
    assert worst and "sample s099:" in worst.group(1) and "sample s000:" not in worst.group(1)
    assert "all 100 cases" in dom
    assert re.search(r'<g id="all-cases" data-cases="100" style="display: ?none;?">', dom), "every case is hidden by default"


def test_map_html_shows_every_case_on_request(tmp_path: Path, dump_dom: Callable[[str], str]) -> None:
    page = write_map_html(tmp_path / "map.html", _predictions(100), RECEIVERS, per_group=10)
    dom = dump_dom(page.as_uri() + "#all")
    assert '<span id="shown">130 cases drawn</span>' in dom
    layer = re.search(r'<g id="all-cases" data-cases="100" style="([^"]*)">', dom)
    assert layer and "none" not in layer.group(1), "every case is shown"


def test_map_html_loads_nothing_from_the_network(tmp_path: Path) -> None:
    page = write_map_html(tmp_path / "map.html", _predictions(5), RECEIVERS).read_text()
    assert not re.search(r"""(src|href)=["']""", page), "the page references an outside file"
    assert "<script>" in page and "<style>" in page
