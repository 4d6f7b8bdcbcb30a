"""`kloset search` and `kloset classify`: ask the services about one photo or one catalog item."""

import json
from pathlib import Path

import grpc

from kloset.cli.client import Clients, CommandError, rpc_message
from kloset.core.errors import InvalidInput
from kloset.core.garments.kfashion import parse_label
from kloset.core.garments.regions import Region, make_box
from kloset.services.convert import regions_to_proto
from kloset.v1 import attribute_pb2, garment_pb2, search_pb2


def _group_name(value: int) -> str:
    return garment_pb2.GarmentGroup.Name(value).removeprefix("GARMENT_GROUP_").lower()


def _regions(args) -> list[Region]:
    """Regions from --label (K-Fashion JSON) or --box x,y,w,h; none means the whole photo."""
    try:
        if args.label:
            return [g.region for g in parse_label(args.label.read_bytes()).garments]
        if args.box:
            parts = [float(v) for v in args.box.split(",")]
            if len(parts) != 4:
                raise InvalidInput("--box needs x,y,width,height")
            return [Region(box=make_box(*parts))]
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot use {args.label or args.box}: {exc}") from None
    except InvalidInput as exc:
        raise CommandError(str(exc)) from None
    return []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def run_search(clients: Clients, args) -> int:
    stub = clients.search()
    search_filter = search_pb2.SearchFilter(categories=args.category or [], colors=args.color or [])
    try:
        if args.item:
            if args.image:
                raise CommandError("give either an IMAGE or --item, not both")
            response = stub.SearchByItem(
                search_pb2.SearchByItemRequest(item_id=args.item, filter=search_filter, top_k=args.top_k), timeout=120
            )
        else:
            if not args.image:
                raise CommandError("give an IMAGE to search with, or --item ITEM_ID")
            request = search_pb2.SearchByImageRequest(
                image=_read(args.image), garments=regions_to_proto(_regions(args)), filter=search_filter,
                top_k=args.top_k,
            )  # fmt: skip
            response = stub.SearchByImage(request, timeout=120)
    except grpc.RpcError as exc:
        raise CommandError(rpc_message(exc)) from None
    garments = [_garment_json(g) for g in response.garments]
    if args.json:
        print(json.dumps({"garments": garments}, ensure_ascii=False))
    else:
        for g in garments:
            print(f"{g['group']}: {g['category']}, {g['color']}  (filter {g['filter']})")
            for rank, hit in enumerate(g["results"], start=1):
                print(f"  {rank:2d}. {hit['item_id']:<24} {hit['score']:.3f}  {hit['category']}, {hit['color']}")
    return 0


def _garment_json(g: search_pb2.GarmentResults) -> dict:
    return {
        "group": _group_name(g.group),
        "category": g.category,
        "color": g.color,
        "filter": {"category": list(g.filter.categories), "color": list(g.filter.colors)},
        "results": [
            {
                "item_id": h.item_id,
                "score": round(h.score, 6),
                "group": _group_name(h.group),
                "category": h.category,
                "color": h.color,
                "source": h.source,
            }
            for h in g.results
        ],
    }


def run_classify(clients: Clients, args) -> int:
    request = attribute_pb2.ClassifyRequest(image=_read(args.image), garments=regions_to_proto(_regions(args)))
    try:
        response = clients.attribute().Classify(request, timeout=120)
    except grpc.RpcError as exc:
        raise CommandError(rpc_message(exc)) from None
    garments = [
        {
            "group": _group_name(g.group),
            "category": g.category,
            "color": g.color,
            "top_categories": [{"label": s.label, "probability": round(s.probability, 4)} for s in g.top_categories],
            "top_colors": [{"label": s.label, "probability": round(s.probability, 4)} for s in g.top_colors],
        }
        for g in response.garments
    ]
    if args.json:
        print(json.dumps({"model_version": response.model_version, "garments": garments}, ensure_ascii=False))
    else:
        for g in garments:
            cats = ", ".join(f"{s['label']} {s['probability']:.2f}" for s in g["top_categories"])
            cols = ", ".join(f"{s['label']} {s['probability']:.2f}" for s in g["top_colors"])
            print(f"{g['group']}: {g['category']} ({cats}); {g['color']} ({cols})")
    return 0
