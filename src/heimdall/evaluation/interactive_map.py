"""An interactive `map.html` of an evaluation (folium, when installed).

The page draws receivers, and for up to `max_samples` test cases the truth, the prediction,
the line between them and the 1-sigma ellipse, from the same GeoJSON the report writes.
Leaflet and the map tiles load in the viewer's browser; nothing is fetched here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["folium_available", "write_map_html"]


def folium_available() -> bool:
    """Whether the optional `folium` package is importable."""
    return importlib.util.find_spec("folium") is not None


def write_map_html(
    path: Path,
    predictions: dict[str, Any],
    receivers: list[tuple[str, float, float]],
    max_samples: int = 200,
) -> bool:
    """Write the map to `path`; return False (writing nothing) when folium is missing.

    `predictions` is the report's FeatureCollection (a `position` point and an
    `ellipse_1sigma` polygon per sample, truth in the properties); `receivers` holds
    `(receiver_id, lat_deg, lon_deg)`.
    """
    if not folium_available():
        return False
    import folium

    lat0 = sum(r[1] for r in receivers) / len(receivers)
    lon0 = sum(r[2] for r in receivers) / len(receivers)
    page = folium.Map(location=[lat0, lon0], zoom_start=8, control_scale=True)
    ellipses = folium.FeatureGroup(name="1-sigma ellipses")
    points = folium.FeatureGroup(name="predictions and truths")
    shown: set[str] = set()
    for feature in predictions["features"]:
        props = feature["properties"]
        if props["sample_id"] not in shown and len(shown) >= max_samples:
            continue
        shown.add(props["sample_id"])
        label = f"sample {props['sample_id']}: error {props['error_m']:,.0f} m, {props['n_receivers_heard']} heard"
        if props["kind"] == "ellipse_1sigma":
            ring = [(lat, lon) for lon, lat in feature["geometry"]["coordinates"][0]]
            folium.Polygon(ring, color="#1f77b4", weight=1, fill=True, fill_opacity=0.08, tooltip=label).add_to(ellipses)
            continue
        lon, lat = feature["geometry"]["coordinates"]
        truth = (props["truth_lat"], props["truth_lon"])
        folium.PolyLine([truth, (lat, lon)], color="#7f7f7f", weight=1).add_to(points)
        folium.CircleMarker((lat, lon), radius=3, color="#1f77b4", fill=True, tooltip=f"prediction, {label}").add_to(points)
        folium.CircleMarker(truth, radius=3, color="#2ca02c", fill=True, tooltip=f"truth, {label}").add_to(points)
    receiver_layer = folium.FeatureGroup(name="receivers")
    for receiver_id, lat, lon in receivers:
        folium.Marker((lat, lon), tooltip=f"receiver {receiver_id}", icon=folium.Icon(color="red", icon="signal")).add_to(receiver_layer)
    for layer in (ellipses, points, receiver_layer):
        layer.add_to(page)
    folium.LayerControl().add_to(page)
    page.save(str(path))
    return True
