"""``oms convert-hf``: convert Hugging Face ViT/YOLOS weights (.safetensors/.bin) to a MindSpore checkpoint."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def _parse_set(items: list[str]) -> dict:
    import json

    from openmindspore.errors import ConfigError

    out = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError("--set", it, "KEY=VALUE", "e.g. --set num_labels=4")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def register(sub) -> None:
    p = add_command(
        sub,
        "convert-hf",
        "convert Hugging Face ViT/YOLOS weights to a MindSpore checkpoint",
        "  oms convert-hf model.safetensors --model yolos-tiny --out yolos-tiny.ckpt\n"
        "  oms convert-hf pytorch_model.bin --model vit-base-patch16-224 --out vit.ckpt\n"
        "  oms convert-hf w.safetensors --model yolos-small --config config.json --out s.ckpt\n"
        "  oms convert-hf w.safetensors --model yolos-tiny --set num_labels=4 --out t.ckpt --json",
        description="Strict, table-driven conversion: every source key must be used, every "
        "parameter filled, shapes equal; mismatches are listed. A config.json next to "
        "SRC (or --config) sets the architecture; otherwise the preset is used.",
    )
    p.add_argument("src", help="Hugging Face weights: .safetensors or PyTorch .bin (zip)")
    p.add_argument("--model", required=True, help="registered model name, e.g. yolos-tiny, vit-base-patch16-224")
    p.add_argument("--out", required=True, help="output MindSpore .ckpt (a .json config is written beside it)")
    p.add_argument("--config", default=None, help="Hugging Face config.json (default: SRC's folder, if present)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from openmindspore.models.hf_convert import convert_hf_checkpoint

    report = convert_hf_checkpoint(args.src, args.model, args.out, args.config, _parse_set(args.set))
    if args.json:
        print_json(report)
    else:
        print(f"converted {report['parameters']} tensors ({report['numel']:,} values) -> {report['out']}")
    return 0
