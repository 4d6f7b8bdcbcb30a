"""`kloset search`, `kloset outfit` and `kloset classify`: ask the services about one photo or catalog item."""

import argparse
import json
from pathlib import Path

import grpc

from kloset.client.stubs import Clients, CommandError, rpc_message
from kloset.core.config import Settings
from kloset.core.errors import InvalidInput
from kloset.core.garments.kfashion import parse_label
from kloset.core.garments.regions import Region, make_box
from kloset.core.index.ranking import FilterPolicy
from kloset.core.limits import InputLimits
from kloset.services.convert import policy_to_proto, regions_to_proto
from kloset.v1 import attribute_pb2, garment_pb2, search_pb2

TIMEOUT_S = 120



def register(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser("search", help="find catalog garments similar to a photo or a catalog item")
    search.add_argument("image", type=Path, nargs="?")
    search.add_argument("--item", help="search with a catalog garment, e.g. 0001/top")
    _add_region_flags(search)
    _add_result_flags(search)
    search.add_argument("--policy", choices=[p.value for p in FilterPolicy], help="filter policy (default: server's)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    search.add_argument("--min-score", type=float, help="leave out results scoring below this")
    search.add_argument("--group-by-photo", action="store_true", help="at most one result per catalog photo")
    search.set_defaults(run=run_search)
    outfit = commands.add_parser("outfit", help="complete the look: bottoms for a top, tops for a bottom")
    outfit.add_argument("image", type=Path, nargs="?")
    outfit.add_argument("--item", help="complete the look of a catalog garment, e.g. 0001/top")
    _add_region_flags(outfit)
    _add_result_flags(outfit)
    outfit.set_defaults(run=run_outfit)
    classify = commands.add_parser("classify", help="category, color and top-3 of each garment of a photo")
    classify.add_argument("image", type=Path)
    _add_region_flags(classify)
    classify.add_argument("--json", action="store_true")
    classify.set_defaults(run=run_classify)


def _add_result_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-k", type=int, default=0, help="results per garment (default: the server's)")
    parser.add_argument("--category", action="append", help="restrict to this category (repeatable)")
    parser.add_argument("--color", action="append", help="restrict to this color (repeatable)")
    parser.add_argument("--sheet", type=Path, help="also write a contact sheet PNG of the results here")
    parser.add_argument("--json", action="store_true")


def _add_region_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--label", type=Path, help="K-Fashion label JSON with the garments' polygons")
    where.add_argument("--box", help="one garment's box: x,y,width,height")


def _group_name(value: int) -> str:
    return garment_pb2.GarmentGroup.Name(value).removeprefix("GARMENT_GROUP_").lower()


def _policy_name(value: int) -> str:
    return search_pb2.FilterPolicy.Name(value).removeprefix("FILTER_POLICY_").lower()


def _regions(args, limits: InputLimits) -> list[Region]:
    """Regions from --label (K-Fashion JSON, within the limits the services apply) or --box x,y,w,h; none means
    the whole photo."""
    try:
        if args.label:
            return [g.region for g in parse_label(args.label.read_bytes(), limits).garments]
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


def _query(args) -> tuple[str, bytes]:
    """The catalog item or the photo to ask about; exactly one of them."""
    if args.item and args.image:
        raise CommandError("give either an IMAGE or --item, not both")
    if not args.item and not args.image:
        raise CommandError("give an IMAGE to search with, or --item ITEM_ID")
    return args.item or "", _read(args.image) if args.image else b""


def _options(args) -> search_pb2.SearchOptions:
    if args.offset < 0:
        raise CommandError("--offset must be 0 or more")
    options = search_pb2.SearchOptions(offset=args.offset, group_by_photo=args.group_by_photo)
    if args.policy:
        options.policy = policy_to_proto(FilterPolicy(args.policy))
    if args.min_score is not None:
        options.min_score = args.min_score
    return options


def run_search(args, settings: Settings) -> int:
    clients = Clients(settings)
    stub = clients.search()
    item, image = _query(args)
    request_regions = [] if item else _regions(args, clients.settings.input_limits)
    search_filter = search_pb2.SearchFilter(categories=args.category or [], colors=args.color or [])
    try:
        if item:
            request = search_pb2.SearchByItemRequest(
                item_id=item, filter=search_filter, top_k=args.top_k, options=_options(args)
            )
            response = stub.SearchByItem(request, timeout=TIMEOUT_S)
        else:
            request = search_pb2.SearchByImageRequest(
                image=image, garments=regions_to_proto(request_regions), filter=search_filter, top_k=args.top_k,
                options=_options(args),
            )  # fmt: skip
            response = stub.SearchByImage(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        raise CommandError(rpc_message(exc)) from None
    garments = [_garment_json(g) for g in response.garments]
    return _answer(clients, args, garments, item, image, upright=not request_regions)


def run_outfit(args, settings: Settings) -> int:
    clients = Clients(settings)
    item, image = _query(args)
    regions = _regions(args, clients.settings.input_limits)
    if item and regions:
        raise CommandError("--label and --box describe a photo; they cannot go with --item")
    if len(regions) > 1:
        raise CommandError("kloset outfit takes one garment: give --box, or a label with a single garment")
    search_filter = search_pb2.SearchFilter(categories=args.category or [], colors=args.color or [])
    request = search_pb2.CompleteLookRequest(item_id=item, image=image, top_k=args.top_k, filter=search_filter)
    if regions:
        request.garment.CopyFrom(regions_to_proto(regions)[0])
    try:
        response = clients.search().CompleteLook(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        raise CommandError(rpc_message(exc)) from None
    return _answer(clients, args, [_garment_json(g) for g in response.garments], item, image, upright=not regions)


def _answer(clients: Clients, args, garments: list[dict], item: str, image: bytes, upright: bool = True) -> int:
    if args.sheet:
        _write_sheet(clients, args.sheet, garments, item, image, upright)
    if args.json:
        print(json.dumps({"garments": garments}, ensure_ascii=False))
        return 0
    for g in garments:
        relaxed = f", relaxed: {g['relaxation']}" if g["relaxed"] else ""
        print(f"{g['group']}: {g['category']}, {g['color']}  ({g['policy']}, filter {g['filter']}{relaxed})")
        for rank, hit in enumerate(g["results"], start=1 + getattr(args, "offset", 0)):
            support = f"  support {hit['support']}" if hit["support"] else ""
            print(f"  {rank:2d}. {hit['item_id']:<24} {hit['score']:.3f}  {hit['category']}, {hit['color']}{support}")
    if args.sheet:
        print(f"contact sheet: {args.sheet}")
    return 0


def _write_sheet(clients: Clients, path: Path, garments: list[dict], item: str, image: bytes, upright: bool) -> None:
    from kloset.cli.sheet import write_contact_sheet

    wanted = list(dict.fromkeys([*([item] if item else []), *(h["item_id"] for g in garments for h in g["results"])]))
    crops: dict[str, bytes] = {}
    try:
        step = clients.settings.max_garment_images  # what the service answers per call (KLOSET_MAX_GARMENT_IMAGES)
        for start in range(0, len(wanted), step):
            request = search_pb2.GetGarmentImagesRequest(item_ids=wanted[start : start + step], max_side=256)
            for crop in clients.search().GetGarmentImages(request, timeout=TIMEOUT_S).images:
                crops[crop.item_id] = crop.jpeg
    except grpc.RpcError as exc:
        raise CommandError(f"cannot fetch the garments' images for the sheet: {rpc_message(exc)}") from None
    if item:
        crops["query"] = crops.get(item, b"")
    title = f"query: {item}" if item else ""
    # Boxes refer to the photo turned upright by its EXIF orientation unless the caller gave the regions.
    write_contact_sheet(path, garments, crops, query_image=image or None, title=title, upright=upright)


def _scores(scores) -> list[dict]:
    return [{"label": s.label, "probability": round(s.probability, 4)} for s in scores]


def _garment_json(g: search_pb2.GarmentResults) -> dict:
    box = g.box if g.HasField("box") else None
    return {
        "group": _group_name(g.group),
        "category": g.category,
        "color": g.color,
        "filter": {"category": list(g.filter.categories), "color": list(g.filter.colors)},
        "policy": _policy_name(g.policy),
        "relaxed": g.relaxed,
        "relaxation": g.relaxation,
        "box": {"x": box.x, "y": box.y, "width": box.width, "height": box.height} if box else None,
        "top_categories": _scores(g.top_categories),
        "top_colors": _scores(g.top_colors),
        "results": [
            {
                "item_id": h.item_id,
                "score": round(h.score, 6),
                "group": _group_name(h.group),
                "category": h.category,
                "color": h.color,
                "source": h.source,
                "photo_id": h.photo_id,
                "visual_similarity": round(h.visual_similarity, 6),
                "color_similarity": round(h.color_similarity, 6),
                "support": h.support,
            }
            for h in g.results
        ],
    }


def run_classify(args, settings: Settings) -> int:
    clients = Clients(settings)
    regions = _regions(args, clients.settings.input_limits)
    request = attribute_pb2.ClassifyRequest(image=_read(args.image), garments=regions_to_proto(regions))
    try:
        response = clients.attribute().Classify(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        raise CommandError(rpc_message(exc)) from None
    garments = [
        {
            "group": _group_name(g.group),
            "category": g.category,
            "color": g.color,
            "top_categories": _scores(g.top_categories),
            "top_colors": _scores(g.top_colors),
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
