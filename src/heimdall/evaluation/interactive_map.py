"""A self-contained `map.html` of an evaluation: inline SVG, CSS and script, no downloads.

The page draws the receivers (named), and for the worst, median and best cases by model
error the truth, the prediction, the line between them and the 1-sigma ellipse, with a
legend, a scale bar, a table of those cases and a switch that shows every case (truth,
prediction and line). Positions are drawn on a local equirectangular projection around the
receivers' centre, so both axes have the same scale in kilometres. Nothing is loaded from
the network (no map tiles): the page opens in a browser on a machine without internet.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASE_GROUPS", "MapCase", "select_cases", "write_map_html"]

#: Case groups shown by default, with their colour.
CASE_GROUPS = {"worst": "#d62728", "median": "#ff7f0e", "best": "#2ca02c"}
_KM_PER_DEG = 6371.0088 * math.pi / 180.0
_WIDTH_PX = 960.0
_MARGIN = 0.05
# Pixels around the drawn area: room for the receivers' names (right) and the scale bar.
_PAD_PX = (20.0, 110.0, 20.0, 40.0)  # left, right, top, bottom


@dataclass(frozen=True)
class MapCase:
    """One test case read back from the report's GeoJSON (degrees, metres)."""

    sample_id: str
    pred_lat_lon: tuple[float, float]
    truth_lat_lon: tuple[float, float]
    error_m: float
    n_heard: int
    ellipse_lat_lon: list[tuple[float, float]]


def select_cases(errors_m: np.ndarray, per_group: int) -> dict[str, np.ndarray]:
    """Indices of the `per_group` worst, nearest-the-median and best cases by error.

    Groups do not overlap: with fewer than `3 * per_group` cases every case is in exactly
    one group. Non-finite errors count as worst.
    """
    errors = np.where(np.isfinite(errors_m), np.asarray(errors_m, dtype=np.float64), np.inf)
    order = np.argsort(errors, kind="stable")  # best first
    n = len(order)
    k = min(per_group, n // 3 + (1 if n % 3 else 0))
    worst = order[::-1][:k]
    rest = order[: n - len(worst)]
    best = rest[: min(k, len(rest))]
    middle = rest[len(best) :]
    centre = len(middle) // 2
    start = max(0, min(centre - k // 2, len(middle) - k))
    median = middle[start : start + k]
    return {"worst": worst, "median": median, "best": best}


def _cases(predictions: dict[str, Any]) -> list[MapCase]:
    points: dict[str, dict[str, Any]] = {}
    rings: dict[str, list[tuple[float, float]]] = {}
    for feature in predictions["features"]:
        props = feature["properties"]
        if props["kind"] == "ellipse_1sigma":
            rings[props["sample_id"]] = [(lat, lon) for lon, lat in feature["geometry"]["coordinates"][0]]
        elif props["kind"] == "position":
            points[props["sample_id"]] = {"props": props, "coordinates": feature["geometry"]["coordinates"]}
    cases = []
    for sample_id, point in points.items():
        props = point["props"]
        lon, lat = point["coordinates"]
        cases.append(
            MapCase(
                sample_id=str(sample_id),
                pred_lat_lon=(float(lat), float(lon)),
                truth_lat_lon=(float(props["truth_lat"]), float(props["truth_lon"])),
                error_m=float(props["error_m"]),
                n_heard=int(props["n_receivers_heard"]),
                ellipse_lat_lon=rings.get(sample_id, []),
            )
        )
    return cases


class _Projection:
    """Degrees to SVG pixels: equirectangular around (lat0, lon0), the same km scale on both axes."""

    def __init__(self, lat0: float, lon0: float, points_lat_lon: list[tuple[float, float]]) -> None:
        self.lat0, self.lon0 = lat0, lon0
        self.cos0 = math.cos(math.radians(lat0))
        xy = np.array([self.km(lat, lon) for lat, lon in points_lat_lon])
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.maximum(high - low, 1.0)
        self.low = low - _MARGIN * span
        span = span * (1 + 2 * _MARGIN)
        left, right, top, bottom = _PAD_PX
        self.px_per_km = (_WIDTH_PX - left - right) / span[0]
        self.height_px = float(span[1] * self.px_per_km + top + bottom)
        self.high_y = self.low[1] + span[1]

    def km(self, lat: float, lon: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.cos0 * _KM_PER_DEG, (lat - self.lat0) * _KM_PER_DEG

    def px(self, lat: float, lon: float) -> tuple[float, float]:
        x_km, y_km = self.km(lat, lon)
        left, _, top, _ = _PAD_PX
        return round(left + (x_km - self.low[0]) * self.px_per_km, 1), round(top + (self.high_y - y_km) * self.px_per_km, 1)


def _case_svg(case: MapCase, projection: _Projection, colour: str, with_ellipse: bool) -> str:
    tx, ty = projection.px(*case.truth_lat_lon)
    px, py = projection.px(*case.pred_lat_lon)
    label = html.escape(f"sample {case.sample_id}: error {case.error_m / 1000:,.1f} km, {case.n_heard} receivers heard")
    parts = []
    if with_ellipse and case.ellipse_lat_lon:
        ring = " ".join(f"{x},{y}" for x, y in (projection.px(lat, lon) for lat, lon in case.ellipse_lat_lon))
        parts.append(f'<polygon class="ellipse" points="{ring}" stroke="{colour}" fill="{colour}"><title>1-sigma ellipse, {label}</title></polygon>')
    parts.append(f'<line class="miss" x1="{tx}" y1="{ty}" x2="{px}" y2="{py}" stroke="{colour}"/>')
    d = 4.0
    parts.append(
        f'<path class="truth" d="M{tx - d},{ty - d}L{tx + d},{ty + d}M{tx - d},{ty + d}L{tx + d},{ty - d}" stroke="{colour}"><title>truth, {label}</title></path>'
    )
    parts.append(f'<circle class="prediction" cx="{px}" cy="{py}" r="3.5" fill="{colour}"><title>prediction, {label}</title></circle>')
    return "".join(parts)


def _scale_bar(projection: _Projection) -> str:
    target_km = 0.2 * _WIDTH_PX / projection.px_per_km
    length_km = max(v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if v <= max(target_km, 1))
    length_px = length_km * projection.px_per_km
    y = projection.height_px - 14
    return (
        f'<g class="scale"><line x1="14" y1="{y:.1f}" x2="{14 + length_px:.1f}" y2="{y:.1f}" stroke="#000" stroke-width="3"/>'
        f'<text x="14" y="{y - 6:.1f}">{length_km} km</text></g>'
    )


_STYLE = """
body{font-family:sans-serif;margin:16px;color:#222}
#map{border:1px solid #bbb;background:#f7f7f2;width:100%;max-width:960px;height:auto;cursor:grab}
.ellipse{fill-opacity:.05;stroke-width:1}
.miss{stroke-width:1;stroke-opacity:.7}
.truth{stroke-width:2;fill:none}
.receiver polygon{fill:#000}
.receiver text,.scale text{font-size:12px;paint-order:stroke;stroke:#fff;stroke-width:3px}
#all-cases .miss{stroke:#999;stroke-opacity:.35}
#all-cases circle{fill:#1f77b4;fill-opacity:.5}
#all-cases .truth{stroke:#555;stroke-opacity:.5}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}
.legend svg{vertical-align:middle}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
"""

# Layer switches and a mouse-wheel zoom / drag pan that change the SVG viewBox.
_SCRIPT = """
(function(){
  const svg=document.getElementById('map');
  const box=svg.viewBox.baseVal;const full=[box.x,box.y,box.width,box.height];
  function count(){
    let n=0;
    document.querySelectorAll('input[data-layer]').forEach(function(input){
      const layer=document.getElementById(input.dataset.layer);
      layer.style.display=input.checked?'':'none';
      if(input.checked&&layer.dataset.cases){n+=Number(layer.dataset.cases);}
    });
    document.getElementById('shown').textContent=n+' cases drawn';
  }
  document.querySelectorAll('input[data-layer]').forEach(function(i){i.addEventListener('change',count);});
  svg.addEventListener('wheel',function(e){
    e.preventDefault();
    const f=e.deltaY>0?1.25:0.8;const r=svg.getBoundingClientRect();
    const mx=box.x+(e.clientX-r.left)/r.width*box.width,my=box.y+(e.clientY-r.top)/r.height*box.height;
    box.x=mx-(mx-box.x)*f;box.y=my-(my-box.y)*f;box.width*=f;box.height*=f;
  },{passive:false});
  let drag=null;
  svg.addEventListener('mousedown',function(e){drag=[e.clientX,e.clientY];});
  window.addEventListener('mouseup',function(){drag=null;});
  window.addEventListener('mousemove',function(e){
    if(!drag){return;}const r=svg.getBoundingClientRect();
    box.x-=(e.clientX-drag[0])/r.width*box.width;box.y-=(e.clientY-drag[1])/r.height*box.height;drag=[e.clientX,e.clientY];
  });
  document.getElementById('reset').addEventListener('click',function(){box.x=full[0];box.y=full[1];box.width=full[2];box.height=full[3];});
  // map.html#all opens with every case shown.
  if(location.hash==='#all'){document.getElementById('show-all').checked=true;}
  count();
})();
"""


def _legend() -> str:
    def swatch(inner: str) -> str:
        return f'<svg width="22" height="14" aria-hidden="true">{inner}</svg>'

    items = [
        (swatch('<polygon points="11,1 18,13 4,13" fill="#000"/>'), "receiver (named)"),
        (swatch('<path d="M7,3L15,11M7,11L15,3" stroke="#444" stroke-width="2"/>'), "true transmitter position"),
        (swatch('<circle cx="11" cy="7" r="4" fill="#444"/>'), "predicted position"),
        (swatch('<line x1="2" y1="7" x2="20" y2="7" stroke="#444"/>'), "truth to prediction"),
        (swatch('<ellipse cx="11" cy="7" rx="9" ry="5" stroke="#444" fill="#444" fill-opacity=".1"/>'), "1-sigma ellipse"),
    ]
    items += [(swatch(f'<rect x="3" y="2" width="16" height="10" fill="{c}"/>'), f"{g} cases by model error") for g, c in CASE_GROUPS.items()]
    items.append((swatch('<circle cx="11" cy="7" r="4" fill="#1f77b4" fill-opacity=".5"/>'), "all cases (switch below)"))
    return '<ul class="legend" id="legend">' + "".join(f"<li>{s} {html.escape(t)}</li>" for s, t in items) + "</ul>"


def write_map_html(
    path: Path,
    predictions: dict[str, Any],
    receivers: list[tuple[str, float, float]],
    per_group: int = 10,
    title: str = "Evaluation map",
) -> Path:
    """Write the page to `path` and return it.

    `predictions` is the report's FeatureCollection (a `position` point and an
    `ellipse_1sigma` polygon per sample, truth and `error_m` in the properties);
    `receivers` holds `(receiver_id, lat_deg, lon_deg)`; `per_group` cases of each of the
    worst, median and best groups are drawn with their ellipse, every case behind a switch.
    """
    cases = _cases(predictions)
    lat0 = float(np.mean([r[1] for r in receivers]))
    lon0 = float(np.mean([r[2] for r in receivers]))
    extent = [(lat, lon) for _, lat, lon in receivers]
    extent += [c.truth_lat_lon for c in cases] + [c.pred_lat_lon for c in cases]
    projection = _Projection(lat0, lon0, extent)
    groups = select_cases(np.array([c.error_m for c in cases]), per_group) if cases else {g: np.array([], int) for g in CASE_GROUPS}
    layers = []
    rows = []
    for group, colour in CASE_GROUPS.items():
        chosen = [cases[i] for i in groups[group]]
        body = "".join(_case_svg(c, projection, colour, with_ellipse=True) for c in chosen)
        layers.append(f'<g id="cases-{group}" data-cases="{len(chosen)}">{body}</g>')
        rows += [
            f'<tr><td style="text-align:left;color:{colour}">{group}</td><td style="text-align:left">{html.escape(c.sample_id)}</td>'
            f"<td>{c.error_m / 1000:,.1f}</td><td>{c.n_heard}</td></tr>"
            for c in chosen
        ]
    every = "".join(_case_svg(c, projection, "#1f77b4", with_ellipse=False) for c in cases)
    all_layer = f'<g id="all-cases" data-cases="{len(cases)}" style="display:none">{every}</g>'
    receiver_svg = []
    for receiver_id, lat, lon in receivers:
        x, y = projection.px(lat, lon)
        name = html.escape(str(receiver_id))
        receiver_svg.append(
            f'<g class="receiver"><polygon points="{x},{y - 7} {x + 6},{y + 5} {x - 6},{y + 5}"><title>receiver {name}</title></polygon>'
            f'<text x="{x + 8}" y="{y - 6}">{name}</text></g>'
        )
    shown = sum(len(v) for v in groups.values())
    height = f"{projection.height_px:.1f}"
    switches = "".join(
        f'<label><input type="checkbox" data-layer="cases-{g}" checked> {g} {len(groups[g])}</label> ' for g in CASE_GROUPS
    )
    switches += f'<label><input type="checkbox" data-layer="all-cases" id="show-all"> all {len(cases)} cases</label> '
    switches += '<button type="button" id="reset">reset zoom</button> <span id="shown"></span>'
    summary = {"cases": len(cases), "highlighted": shown, "receivers": [r[0] for r in receivers]}
    # "<" escaped so that no receiver name can close the script element.
    summary_json = json.dumps(summary).replace("<", "\\u003c")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{shown} of {len(cases)} test cases: the {len(groups["worst"])} worst, {len(groups["median"])} around the median and
{len(groups["best"])} best by model error (every case: the switch below, or open map.html#all). Wheel to zoom, drag
to pan, hover for details.
Local projection around the receivers' centre ({lat0:.4f}, {lon0:.4f}); both axes in the same kilometres.</p>
{_legend()}
<p>{switches}</p>
<svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH_PX:.0f} {height}" width="{_WIDTH_PX:.0f}" height="{height}">
<g id="all">{all_layer}{"".join(layers)}</g><g id="receivers">{"".join(receiver_svg)}</g>{_scale_bar(projection)}
</svg>
<h2>Cases drawn</h2>
<table id="cases"><tr><th>group</th><th>sample</th><th>error (km)</th><th>receivers heard</th></tr>{"".join(rows)}</table>
<script type="application/json" id="summary">{summary_json}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
