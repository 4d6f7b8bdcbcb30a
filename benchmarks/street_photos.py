"""How often does search on an unannotated street photo return a top and a bottom, each with results?

Needs running kloset roles with a catalog indexed, e.g. `make run` and `kloset ingest ../shared/data/ccp --wait`.
Takes the first N photos of a queries/ folder whose tags name a top and a bottom and no outerwear or one-piece,
runs `kloset search PHOTO --json` on each and prints the counts.

    .venv/bin/python benchmarks/street_photos.py ../shared/data/ccp/queries --n 40
"""

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries", type=Path, help="folder with images/ and tags.json")
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    tags = json.loads((args.queries / "tags.json").read_text(encoding="utf-8"))
    chosen = [k for k, v in sorted(tags.items()) if v["상의"] and v["하의"] and not v["아우터"] and not v["원피스"]]
    found, garments, with_results = collections.Counter(), 0, 0
    kloset = Path(sys.executable).with_name("kloset")
    for image_id in chosen[: args.n]:
        out = subprocess.run([kloset, "search", args.queries / "images" / f"{image_id}.jpg", "--json"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(out.stdout)["garments"]
        found["+".join(sorted(g["group"] for g in result)) or "nothing"] += 1
        garments += len(result)
        with_results += sum(1 for g in result if g["results"])
    print(json.dumps({"photos": min(args.n, len(chosen)), "groups_found": dict(found), "garments": garments,
                      "garments_with_results": with_results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
