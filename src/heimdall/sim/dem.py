"""A user's digital elevation model (DEM): SRTM `.hgt` tiles or GeoTIFF, never downloaded.

`load_elevation_grid` reads the tiles of a directory that cover a network's area and
resamples them once onto a regular east/north grid (metres about the network's reference),
so that terrain profiles between any transmitter and receiver are bilinear lookups.

- SRTM `.hgt`: named by the latitude/longitude of the tile's south-west corner
  (`N40W112.hgt` covers 40..41 N, 112..111 W), big-endian int16 metres, 1201 x 1201
  (3 arc-seconds) or 3601 x 3601 (1 arc-second) samples, first row the northern edge;
  voids (-32768) are filled with the tile's median.
- GeoTIFF (`.tif` / `.tiff`, through the optional `rasterio`; `pip install
  'heimdall[terrain]'`): band 1 in metres, in geographic coordinates (EPSG:4326).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heimdall.errors import ConfigError, InputError, NotFoundError
from heimdall.geo import ReferencePoint, local_to_ground
from heimdall.sim import propagation
from heimdall.sim.diffraction import LinkTerrain, deygout_loss
from heimdall.sim.terrain_kernels import deygout_links

__all__ = ["ElevationGrid", "DemTerrain", "hgt_tile_name", "read_hgt", "write_hgt", "load_elevation_grid"]

_HGT_SIZES = {1201 * 1201 * 2: 1201, 3601 * 3601 * 2: 3601}
_HGT_VOID = -32768
#: Largest resampled grid side: 2000 x 2000 float32 is 16 MB, copied to each worker.
_MAX_GRID_SIDE = 2000


def hgt_tile_name(lat_deg: float, lon_deg: float) -> str:
    """The SRTM tile file holding (lat, lon), e.g. 40.76, -111.84 -> `N40W112.hgt`."""
    lat0, lon0 = math.floor(lat_deg), math.floor(lon_deg)
    return f"{'N' if lat0 >= 0 else 'S'}{abs(lat0):02d}{'E' if lon0 >= 0 else 'W'}{abs(lon0):03d}.hgt"


def _tile_corner(name: str) -> tuple[int, int]:
    stem = name[:7].upper()
    try:
        lat = int(stem[1:3]) * (1 if stem[0] == "N" else -1)
        lon = int(stem[4:7]) * (1 if stem[3] == "E" else -1)
    except ValueError as exc:
        raise ConfigError(f"DEM tile {name!r}: not an SRTM name like N40W112.hgt") from exc
    if stem[0] not in "NS" or stem[3] not in "EW":
        raise ConfigError(f"DEM tile {name!r}: not an SRTM name like N40W112.hgt")
    return lat, lon


@dataclass(frozen=True)
class _GeoRaster:
    """Elevations (m) on a lat/lon lattice: row 0 at `north_deg`, column 0 at `west_deg`."""

    elevation_m: np.ndarray
    north_deg: float
    west_deg: float
    step_lat_deg: float
    step_lon_deg: float

    def covers(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        rows, cols = self.elevation_m.shape
        south = self.north_deg - (rows - 1) * self.step_lat_deg
        east = self.west_deg + (cols - 1) * self.step_lon_deg
        return (lat_deg >= south) & (lat_deg <= self.north_deg) & (lon_deg >= self.west_deg) & (lon_deg <= east)

    def sample(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
        row = (self.north_deg - lat_deg) / self.step_lat_deg
        col = (lon_deg - self.west_deg) / self.step_lon_deg
        return _bilinear(self.elevation_m, row, col)


def _bilinear(grid: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of `grid` at fractional (row, col), clamped to its edges."""
    rows, cols = grid.shape
    row = np.clip(row, 0.0, rows - 1.0)
    col = np.clip(col, 0.0, cols - 1.0)
    r0 = np.minimum(row.astype(np.int64), rows - 2)
    c0 = np.minimum(col.astype(np.int64), cols - 2)
    fr = (row - r0).astype(grid.dtype)
    fc = (col - c0).astype(grid.dtype)
    top = grid[r0, c0] * (1 - fc) + grid[r0, c0 + 1] * fc
    bottom = grid[r0 + 1, c0] * (1 - fc) + grid[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def read_hgt(path: Path) -> _GeoRaster:
    """One SRTM `.hgt` tile (1201 or 3601 square, big-endian int16 metres)."""
    size = _HGT_SIZES.get(path.stat().st_size)
    if size is None:
        raise ConfigError(f"DEM tile {path.name}: {path.stat().st_size} bytes is neither a 1201^2 nor a 3601^2 SRTM tile")
    lat0, lon0 = _tile_corner(path.name)
    raw = np.fromfile(path, dtype=">i2").reshape(size, size)
    elevation = raw.astype(np.float32)
    void = raw == _HGT_VOID
    if void.all():
        raise ConfigError(f"DEM tile {path.name}: every sample is void")
    if void.any():
        elevation[void] = float(np.median(elevation[~void]))
    step = 1.0 / (size - 1)
    return _GeoRaster(elevation, lat0 + 1.0, float(lon0), step, step)


def write_hgt(directory: Path, lat_deg: int, lon_deg: int, elevation_m: np.ndarray) -> Path:
    """Write an SRTM tile (1201 or 3601 square, first row north) for the tile whose
    south-west corner is (`lat_deg`, `lon_deg`); e.g. a synthetic DEM for tests."""
    size = elevation_m.shape[0]
    if elevation_m.shape != (size, size) or size not in (1201, 3601):
        raise InputError(f"an SRTM tile is 1201 or 3601 square, got {elevation_m.shape}")
    path = Path(directory) / hgt_tile_name(lat_deg + 0.5, lon_deg + 0.5)
    np.round(elevation_m).astype(">i2").tofile(path)
    return path


def _read_geotiff(path: Path) -> _GeoRaster:
    try:
        import rasterio
    except ImportError as exc:
        raise ConfigError(f"DEM {path.name}: reading GeoTIFF needs rasterio (pip install 'heimdall[terrain]')") from exc
    with rasterio.open(path) as source:
        crs = source.crs
        if crs is None or not crs.is_geographic:
            raise ConfigError(f"DEM {path.name}: expected geographic coordinates (EPSG:4326), got {crs}")
        band = source.read(1, masked=True).astype(np.float32)
        transform = source.transform
    elevation = band.filled(float(np.ma.median(band)) if band.count() else 0.0)
    # Pixel centres: the affine maps the upper-left corner of pixel (0, 0).
    step_lon, step_lat = float(transform.a), float(-transform.e)
    return _GeoRaster(
        np.asarray(elevation), float(transform.f) - step_lat / 2.0, float(transform.c) + step_lon / 2.0, step_lat, step_lon
    )


@dataclass(frozen=True)
class ElevationGrid:
    """Ground elevation (m) on a regular local grid: `elevation_m[i, j]` at north
    `north0_m + i * step_m`, east `east0_m + j * step_m` (metres about the reference)."""

    elevation_m: np.ndarray  # [H, W] float32
    east0_m: float
    north0_m: float
    step_m: float

    def at(self, east_m: np.ndarray, north_m: np.ndarray) -> np.ndarray:
        """Bilinear ground elevation (m) at local positions (clamped to the grid's edges)."""
        return _bilinear(self.elevation_m, (north_m - self.north0_m) / self.step_m, (east_m - self.east0_m) / self.step_m)


def load_elevation_grid(
    dem_dir: Path, reference: ReferencePoint, bounds_m: tuple[float, float, float, float], step_m: float | None = None
) -> ElevationGrid:
    """Resample the DEM tiles of `dem_dir` onto a local grid over `bounds_m`
    (east_min, east_max, north_min, north_max); ConfigError naming a missing tile."""
    dem_dir = Path(dem_dir)
    if not dem_dir.is_dir():
        raise NotFoundError(f"DEM directory {str(dem_dir)!r} not found")
    files = sorted(p for p in dem_dir.iterdir() if p.suffix.lower() in (".hgt", ".tif", ".tiff"))
    if not files:
        raise ConfigError(f"DEM directory {str(dem_dir)!r} has no .hgt or GeoTIFF tiles")
    east_min, east_max, north_min, north_max = bounds_m
    if not (east_max > east_min and north_max > north_min):
        raise InputError(f"DEM bounds must have positive extent, got {bounds_m}")
    rasters = [read_hgt(p) if p.suffix.lower() == ".hgt" else _read_geotiff(p) for p in files]
    if step_m is None:
        native_m = min(r.step_lat_deg for r in rasters) * 111_320.0
        step_m = max(native_m, max(east_max - east_min, north_max - north_min) / (_MAX_GRID_SIDE - 1))
    east = np.arange(east_min, east_max + step_m, step_m)
    north = np.arange(north_min, north_max + step_m, step_m)
    grid_east, grid_north = np.meshgrid(east, north)
    lat, lon = local_to_ground(grid_east.ravel(), grid_north.ravel(), reference)
    lat, lon = np.asarray(lat), np.asarray(lon)
    elevation = np.full(lat.shape, np.nan, dtype=np.float32)
    for raster in rasters:
        todo = np.isnan(elevation) & raster.covers(lat, lon)
        elevation[todo] = raster.sample(lat[todo], lon[todo])
    missing = np.isnan(elevation)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ConfigError(
            f"DEM directory {str(dem_dir)!r} does not cover ({lat[first]:.4f}, {lon[first]:.4f}); "
            f"add tile {hgt_tile_name(lat[first], lon[first])} (or a GeoTIFF covering it)"
        )
    return ElevationGrid(elevation.reshape(grid_north.shape), float(east[0]), float(north[0]), float(step_m))


@dataclass(frozen=True)
class DemTerrain:
    """What the simulator needs for terrain-aware links over one network's DEM grid."""

    grid: ElevationGrid
    wavelength_m: float
    rx_height_m: float
    profile_points: int

    @classmethod
    def build(cls, grid: ElevationGrid, frequency_hz: float, rx_height_m: float, profile_points: int) -> DemTerrain:
        return cls(grid, float(propagation.wavelength_m(frequency_hz)), float(rx_height_m), int(profile_points))

    def profiles_m(self, tx_m: np.ndarray, rx_m: np.ndarray) -> np.ndarray:
        """Ground elevation [N, R, P] (m) along the straight lines from transmitters
        `tx_m` [N, 2] to receivers `rx_m` [R, 2+] (east/north metres)."""
        t = np.linspace(0.0, 1.0, self.profile_points)
        tx = np.asarray(tx_m, dtype=np.float64)[:, None, None, :]
        rx = np.asarray(rx_m, dtype=np.float64)[None, :, None, :2]
        points = tx + (rx - tx) * t[None, None, :, None]
        return self.grid.at(points[..., 0], points[..., 1])

    def link_features(self, tx_m: np.ndarray, rx_m: np.ndarray, tx_height_m: float) -> LinkTerrain:
        """Line of sight, obstructions and Deygout loss of every link, [N, R] each (the
        compiled kernel; `deygout_loss` over `profiles_m` is its numpy reference)."""
        n, r = tx_m.shape[0], rx_m.shape[0]
        loss = np.empty((n, r))
        los = np.empty((n, r), dtype=np.bool_)
        obstructions = np.empty((n, r), dtype=np.int16)
        grid = self.grid
        deygout_links(
            np.ascontiguousarray(tx_m, dtype=np.float64), np.ascontiguousarray(rx_m[:, :2], dtype=np.float64),
            grid.elevation_m, grid.east0_m, grid.north0_m, grid.step_m, float(tx_height_m), self.rx_height_m,
            self.wavelength_m, np.empty(self.profile_points), loss, los, obstructions,
        )
        return LinkTerrain(line_of_sight=los, obstructions=obstructions, diffraction_loss_db=loss)

    def pair_features(self, tx_m: np.ndarray, rx_m: np.ndarray, tx_height_m: float) -> LinkTerrain:
        """Terrain features of the links tx_m[i] -> rx_m[i] ([M, 2] and [M, 2+]), [M] each."""
        t = np.linspace(0.0, 1.0, self.profile_points)
        tx = np.asarray(tx_m, dtype=np.float64)[:, None, :]
        rx = np.asarray(rx_m, dtype=np.float64)[:, None, :2]
        points = tx + (rx - tx) * t[None, :, None]
        profile = self.grid.at(points[..., 0], points[..., 1])
        distance_m = np.linalg.norm(tx_m - rx_m[:, :2], axis=-1)
        return deygout_loss(profile, distance_m, tx_height_m, self.rx_height_m, self.wavelength_m)
