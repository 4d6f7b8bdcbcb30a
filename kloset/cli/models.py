"""`kloset sample`, `train`, `evaluate` and `segment`: the models and the data they learn from, offline."""

import argparse
import json
import logging
from pathlib import Path

from kloset.client.stubs import CommandError
from kloset.core.config import Settings


def register(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser("sample", help="write a small synthetic catalog in the K-Fashion layout")
    sample.add_argument("dir", type=Path)
    sample.add_argument("--n", type=int, default=40)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(run=run_sample)
    train = commands.add_parser("train", help="train the attribute heads or the segmenter on a K-Fashion folder")
    train.add_argument("what", nargs="?", default="attributes", choices=["attributes", "segmenter"])
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--out", type=Path, help="default: models/attributes or models/segmenter")
    train.add_argument("--input-size", type=int, default=224, help="attributes: crop size in pixels")
    train.add_argument("--height", type=int, default=320, help="segmenter: input height (multiple of 32)")
    train.add_argument("--width", type=int, default=224, help="segmenter: input width (multiple of 32)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--validation-percent", type=int, default=15)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--cache", type=Path, help="feature (attributes) or encoder-map (segmenter) cache file")
    train.add_argument(
        "--queries", type=Path, help="attributes: tag-only photos (queries/ with tags.json) as extra data"
    )
    train.add_argument("--street-crops", action="store_true",
                       help="attributes: also train the category head on the training photos' garments cut out as "
                       "street queries are (the segmenter's crop, and masks that err as it does)")  # fmt: skip
    train.set_defaults(run=run_train)
    segment = commands.add_parser("segment", help="write a photo's garment masks and crops, to look at")
    segment.add_argument("image", type=Path)
    segment.add_argument("--out", type=Path, required=True)
    segment.set_defaults(run=run_segment)
    evaluate = commands.add_parser("evaluate", help="measure the attribute model on a K-Fashion folder")
    evaluate.add_argument("what", choices=["attributes", "segmenter"])
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--model", type=Path, help="model folder (default: KLOSET_MODEL_DIR / KLOSET_SEGMENTER_DIR)")
    evaluate.add_argument("--split", choices=["all", "validation"], default="all",
                          help="every garment, or only the photos the model held out")  # fmt: skip
    evaluate.add_argument("--plots", type=Path, help="write confusion-matrix PNGs here")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=run_evaluate)


def run_sample(args, settings: Settings) -> int:
    from kloset.core.garments.sample import write_sample_catalog

    paths = write_sample_catalog(args.dir, args.n, args.seed)
    print(f"wrote {len(paths)} photos with K-Fashion labels under {args.dir}")
    return 0


def run_train(args, settings: Settings) -> int:
    logging.basicConfig(level="INFO", format="%(message)s")
    if args.what == "segmenter":
        from kloset.core.models.segmenter_training import extract_maps, train_segmenter

        maps = extract_maps(args.data, args.height, args.width, settings.backbone_weights, args.cache)
        info = train_segmenter(
            maps, height=args.height, width=args.width, out_dir=args.out or Path("models/segmenter"),
            epochs=args.epochs or 40, validation_percent=args.validation_percent, seed=args.seed,
            source=args.data.name,
        )  # fmt: skip
    else:
        from kloset.core.models.training import extract_features, train_heads

        features = extract_features(args.data, args.input_size, settings.backbone_weights, args.cache)
        if args.queries:
            from kloset.core.models.loading import load_segmenter
            from kloset.core.models.training import extract_query_features, merge

            segmenter = load_segmenter(settings)
            cache = args.cache.with_name(f"{args.cache.stem}-queries.npz") if args.cache else None
            extra = extract_query_features(args.queries, args.input_size, segmenter, settings.backbone_weights, cache)
            features = merge(features, extra)
        if args.street_crops:
            from kloset.core.models.loading import load_segmenter
            from kloset.core.models.training import extract_street_features, merge

            segmenter = load_segmenter(settings)
            cache = args.cache.with_name(f"{args.cache.stem}-street.npz") if args.cache else None
            street = extract_street_features(args.data, args.input_size, segmenter, settings.backbone_weights, cache,
                                             args.validation_percent, seed=args.seed)  # fmt: skip
            features = merge(features, street)
        info = train_heads(
            features, input_size=args.input_size, out_dir=args.out or Path("models/attributes"),
            epochs=args.epochs or 40, validation_percent=args.validation_percent, seed=args.seed,
            source=args.data.name,
        )  # fmt: skip
    print(json.dumps({"version": info.version, **info.training}, ensure_ascii=False))
    return 0


def run_evaluate(args, settings: Settings) -> int:
    if not (args.data / "labels").is_dir():
        raise CommandError(f"{args.data} is not a K-Fashion folder (no labels/)")
    if args.what == "segmenter":
        from kloset.core.models.loading import load_segmenter
        from kloset.core.models.segmenter_training import evaluate_segmenter

        segmenter = load_segmenter(settings, args.model)
        figures = evaluate_segmenter(segmenter, args.data, args.split)
    else:
        figures = _evaluate_attributes(args, settings)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        print("  ".join(f"{k} {v}" for k, v in figures.items() if k != "per_class"))
    return 0


def _evaluate_attributes(args, settings) -> dict:
    from kloset.core.garments.labels import CATEGORIES, COLORS
    from kloset.core.models.evaluation import evaluate_attributes
    from kloset.core.models.loading import load_attribute_model

    model = load_attribute_model(settings, args.model)
    figures, matrices = evaluate_attributes(model, args.data, args.split)
    if args.plots:
        from kloset.core.models.plots import save_confusion

        for head, labels in (("category", CATEGORIES), ("color", COLORS)):
            title = f"{head}, {figures['n']} garments ({args.split}), {model.version}"
            save_confusion(matrices[head], labels, args.plots / f"confusion_{head}.png", title)
    return figures


def run_segment(args, settings: Settings) -> int:
    from kloset.core.garments.images import decode_image
    from kloset.core.models.loading import load_segmenter
    from kloset.core.models.plots import save_segmentation

    segmenter = load_segmenter(settings)
    pixels = decode_image(args.image.read_bytes(), settings.max_image_pixels, apply_exif_orientation=True)
    written = save_segmentation(pixels, segmenter.segment(pixels), args.out, args.image.stem)
    for path in written:
        print(path)
    return 0
