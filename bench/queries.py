"""Query latency of the shipped GeoSPARQL queries on an embedded store with >= 1 M triples.

Store: vocabulary + N synthetic crop field instances (bench/p5_export fields, ~9.5 triples each)
+ M LUCAS points near them (half inside a random field, half 5-40 m off a field edge) + one ice
chart. Each query runs `--repeats` times; the median and first-run latencies are reported, with
the row count. Baselines in the same run: a plain triple-pattern COUNT over all feature types, and
`crop_fields_in_region` without its grid-cell pre-filter (the full `geof:sfIntersects` scan, the
query's former text) for a small, a medium and a whole-extent region (the last one above
query.MAX_GRID_CELLS: no pre-filter, the same scan); each pair must return the same rows.
Federation (`--federated-points`, 0 to skip): that many LUCAS points on a second, in-memory
`oxigraph serve` on 127.0.0.1 (stopped at the end), joined by `federated_lucas_unmatched`.
Headline ratio: full scan / grid pre-filter median latency of `crop_fields_in_region` on the
5x5 km region (the query's plain text is the baseline; no goal, measured). CPU times are
``time.process_time`` (user + system of this process: the store is embedded).
Run: .venv/bin/python bench/queries.py [--features 110000 --points 2000 --federated-points 500]
     [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "tasks" / "linked_data"))

from common import add_quick_flag, report  # noqa: E402


def write_lucas_points(path: Path, fields_parquet: Path, n: int, seed: int = 1) -> None:
    """LUCAS-shaped CSV: points inside or just outside random fields, LC1 of the field's class."""
    import geopandas as gpd
    import numpy as np
    import shapely

    crop_to_lc1 = {"grassland": "E20", "maize": "B16", "winter_wheat": "B11", "rye": "B14",
                   "potato": "B21", "beet": "B22", "sunflower": "B31", "rapeseed": "B32",
                   "soy": "B33", "triticale": "B18", "winter_barley": "B13", "spring_barley": "B13",
                   "legumes": "B41", "permanent_plantations": "B82", "other": "B15",
                   "winter_caraway": "B37"}
    rng = np.random.default_rng(seed)
    fields = gpd.read_parquet(fields_parquet)
    pick = fields.iloc[rng.choice(len(fields), n, replace=False)]
    centroid = shapely.centroid(pick.geometry.values)
    bounds = shapely.bounds(pick.geometry.values)
    outside = rng.random(n) < 0.5
    offset = rng.uniform(5, 40, n)
    x = np.where(outside, bounds[:, 2] + offset, shapely.get_x(centroid))
    y = shapely.get_y(centroid)
    points = gpd.GeoSeries(shapely.points(x, y), crs=fields.crs).to_crs("EPSG:4326")
    lc1 = [crop_to_lc1[c] for c in pick["crop_class"]]
    lines = ["POINT_ID,GPS_LAT,GPS_LONG,LC1,SURVEY_DATE,OBS_TYPE\n"]
    for i, (pt, code) in enumerate(zip(points, lc1, strict=True)):
        lines.append(f"{1_000_000 + i},{pt.y:.7f},{pt.x:.7f},{code},15/06/18,1\n")
    path.write_text("".join(lines))


# crop_fields_in_region before the grid pre-filter (the baseline of the pre-filtered query).
SCAN_QUERY = """# @param crop_type concept:crop_type
# @param region wkt
PREFIX eeo: <https://w3id.org/eeflow/ontology#>
PREFIX geo: <http://www.opengis.net/ont/geosparql#>
PREFIX geof: <http://www.opengis.net/def/function/geosparql/>
PREFIX sosa: <http://www.w3.org/ns/sosa/>
SELECT ?field ?confidence ?run_key ?wkt WHERE {
  ?field a eeo:CropFieldInstance ;
         eeo:hasCropType ?crop_type ;
         eeo:confidence ?confidence ;
         sosa:isResultOf/eeo:runKey ?run_key ;
         geo:hasGeometry/geo:asWKT ?wkt .
  FILTER(geof:sfIntersects(?wkt, ?region))
}
ORDER BY ?field
"""


def timed(run, repeats: int) -> dict:
    """Run ``run()`` (returns rows) ``repeats`` times; wall/CPU figures, rows of the last run."""
    times, cpus, rows = [], [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        rows = run()
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return {"rows": len(rows), "first_s": round(times[0], 4),
            "median_s": round(statistics.median(times), 4),
            "median_cpu_s": round(statistics.median(cpus), 4),
            "loadavg_1m": round(os.getloadavg()[0], 2), "_rows": rows}


def federated_case(cfg, store, root: Path, tiles: list[Path], points: int, repeats: int) -> dict:
    """federated_lucas_unmatched with ``points`` LUCAS points on a second local oxigraph server."""
    from tasks.config.linked_data import LinkedDataConfig, StoreConfig
    from tasks.linked_data.export import export_product
    from tasks.linked_data.federation import run_federated_query
    from tasks.linked_data.server import OxigraphServer
    from tasks.linked_data.store import load_product

    folder = root / "lucas" / "points" / "2019"
    folder.mkdir(parents=True)
    write_lucas_points(folder / "lucas.csv", tiles[0], points, seed=2)
    export_product(cfg, "lucas_points", "2019")
    with OxigraphServer(None) as server:
        remote = cfg.model_copy(update={"store": StoreConfig(mode="http", url=server.url)})
        loaded = load_product(remote, "lucas_points", "2019")
        print(f"remote: {loaded['triples']} triples on {server.url}", file=sys.stderr)
        fed_cfg = LinkedDataConfig.model_validate(
            {**cfg.model_dump(), "federation": {"endpoints": {"lucas": f"{server.url}/query"}}})
        return timed(lambda: run_federated_query(fed_cfg, "lucas", 10.0, store=store)["rows"],
                     repeats)


def main() -> None:
    from linked_data_samples import DAY, write_ice_chart
    from p5_export import make_fields

    from tasks.config.linked_data import LinkedDataConfig
    from tasks.linked_data.export import export_product
    from tasks.linked_data.query import run_named_query
    from tasks.linked_data.store import load_product, open_store

    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=110_000)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--federated-points", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    add_quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.features, args.points, args.federated_points, args.repeats = 5_000, 200, 50, 1
    year = "2017-09_2018-08"
    with tempfile.TemporaryDirectory(prefix="queries-") as tmp:
        cfg = LinkedDataConfig(data_root=str(Path(tmp) / "data"))
        root = cfg.resolved_root()
        # predict's layout: {year}/{tile}/{tile}_instances.parquet (one 250k-field tile here)
        tiles = make_fields(root / "food_security" / "predict" / year / "T00", args.features)
        lucas_dir = root / "lucas" / "points" / "2018"
        lucas_dir.mkdir(parents=True)
        write_lucas_points(lucas_dir / "lucas.csv", tiles[0], args.points)
        write_ice_chart(root)
        total = 0
        for product, key in [("vocabulary", "current"), ("crop_field_instances", year),
                             ("lucas_points", "2018"), ("ice_chart", DAY)]:
            export_product(cfg, product, key)
            loaded = load_product(cfg, product, key)
            total += loaded["triples"]
            print(f"loaded {product}: {loaded['triples']} triples in {loaded['seconds']} s",
                  file=sys.stderr)
        print(f"store: {total} triples", file=sys.stderr)
        store = open_store(cfg)
        region = "POLYGON((15.0 47.0, 15.05 47.0, 15.05 47.05, 15.0 47.05, 15.0 47.0))"
        medium = "POLYGON((15.2 47.1, 15.3 47.1, 15.3 47.2, 15.2 47.2, 15.2 47.1))"
        whole = "POLYGON((14.9 46.9, 16.2 46.9, 16.2 47.8, 14.9 47.8, 14.9 46.9))"
        scan = Path(tmp) / "crop_fields_in_region_scan.rq"
        scan.write_text(SCAN_QUERY)
        cases = [
            ("baseline: COUNT features by type", None, None),
            ("ice_of_type_in_area", "ice_of_type_in_area",
             {"ice_type": "ice", "day": DAY,
              "area": "POLYGON((-20 70, 10 70, 10 85, -20 85, -20 70))"}),
        ]
        for size, wkt in [("5x5 km", region), ("8x11 km", medium), ("whole extent", whole)]:
            params = {"crop_type": "maize", "region": wkt}
            cases += [(f"crop_fields_in_region {size}: full scan (before)", str(scan), params),
                      (f"crop_fields_in_region {size}: grid pre-filter", "crop_fields_in_region",
                       params)]
        cases += [
            ("lucas_unmatched", "lucas_unmatched", {"radius": 10}),
            ("catalogue_search", "catalogue_search",
             {"product_type": "crop_field_instances", "area": region,
              "start": "2018-01-01", "end": "2018-12-31"}),
            ("observation_image_scene", "observation_image_scene",
             {"feature": f"{cfg.base_iri}feature/crop_field/{year}/T00/17"}),
        ]
        results = []
        for label, name, params in cases:
            if name is None:
                def run():
                    return list(store.query(
                        "SELECT ?t (COUNT(?f) AS ?n) WHERE { ?f a ?t } GROUP BY ?t"))
            else:
                def run(name=name, params=params):
                    return run_named_query(cfg, name, params, store)["rows"]
            figures = timed(run, args.repeats)
            rows = figures.pop("_rows")
            if label.endswith("grid pre-filter"):
                before = results[-1]
                if rows != before.pop("_rows_full"):
                    raise AssertionError(f"{label}: rows differ from the full scan")
            results.append({"query": label, **figures})
            if label.endswith("(before)"):
                results[-1]["_rows_full"] = rows
            print(json.dumps({k: v for k, v in results[-1].items() if k != "_rows_full"}),
                  file=sys.stderr)
        if args.federated_points:
            figures = federated_case(cfg, store, root, tiles, args.federated_points,
                                     args.repeats)
            figures.pop("_rows")
            results.append({"query": f"federated_lucas_unmatched ({args.federated_points} "
                                     "remote points)", **figures})
            print(json.dumps(results[-1]), file=sys.stderr)
        store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"store_triples": total, "results": results, "peak_rss_mb": round(rss)},
                     indent=1))
    by = {r["query"]: r for r in results}
    ratio = (by["crop_fields_in_region 5x5 km: full scan (before)"]["median_s"]
             / max(by["crop_fields_in_region 5x5 km: grid pre-filter"]["median_s"], 1e-9))
    report("queries", ratio, "none (measured)", None,
           {"store_triples": total, "results": results, "peak_rss_mb": round(rss),
            "features": args.features, "points": args.points},
           baseline="crop_fields_in_region as a full geof:sfIntersects scan (5x5 km)",
           quick=args.quick)


if __name__ == "__main__":
    main()
