"""GeoJSON rendering of predictions: a point and its 1-sigma ellipse per sample."""

from __future__ import annotations

from typing import Any

from heimdall.evaluation.metrics import ellipse_polygon_enu
from heimdall.export.localizer import Predictions
from heimdall.geo import ReferencePoint, local_to_ground

__all__ = ["predictions_geojson", "prediction_records"]


def prediction_records(sample_ids: list[str], predictions: Predictions) -> list[dict[str, Any]]:
    """One JSON-ready record per sample, in the `localize --json` shape."""
    return [
        {
            "sample_id": sample_id,
            "lat": round(float(predictions.lat_deg[i]), 7),
            "lon": round(float(predictions.lon_deg[i]), 7),
            "sigma_major_m": round(float(predictions.sigma_major_m[i]), 2),
            "sigma_minor_m": round(float(predictions.sigma_minor_m[i]), 2),
            "orientation_deg": round(float(predictions.orientation_deg[i]), 2),
            "ellipse95_major_m": round(float(predictions.ellipse95_major_m[i]), 2),
            "ellipse95_minor_m": round(float(predictions.ellipse95_minor_m[i]), 2),
            "n_receivers_heard": int(predictions.n_receivers_heard[i]),
            "out_of_area": bool(predictions.out_of_area[i]) if predictions.out_of_area is not None else False,
            "warnings": list(predictions.warnings[i]) if predictions.warnings else [],
        }
        for i, sample_id in enumerate(sample_ids)
    ]


def predictions_geojson(
    sample_ids: list[str], predictions: Predictions, reference: ReferencePoint, model: str
) -> dict[str, Any]:
    """A FeatureCollection: per sample a Point and a Polygon (the 1-sigma ellipse); the 95%
    ellipse's semi-axes are properties of both (same centre and orientation)."""
    features: list[dict[str, Any]] = []
    for record, position, covariance in zip(
        prediction_records(sample_ids, predictions), predictions.position_m, predictions.covariance_m2, strict=True
    ):
        ring = ellipse_polygon_enu(position, covariance, k_sigma=1.0)
        lat, lon = local_to_ground(ring[:, 0], ring[:, 1], reference)
        properties = dict(record, model=model)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [record["lon"], record["lat"]]},
                "properties": dict(properties, kind="position"),
            }
        )
        coordinates = [[round(float(x), 7), round(float(y), 7)] for x, y in zip(lon, lat, strict=True)]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [coordinates]},
                "properties": dict(properties, kind="ellipse_1sigma"),
            }
        )
    return {"type": "FeatureCollection", "features": features}
