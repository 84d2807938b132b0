"""Configuration: every preset and every old run folder reads to the values the pre-refactor code gave.

``fixtures/configs/resolved_presets.json`` and ``fixtures/configs/legacy_runs/*.yaml`` were written by the
configuration code as it was before it moved into one typed module (commit 20bc783, by
``fixtures/configs/record.py``): for every preset (and every StyleGAN2 preset's 2D twin) its header, its model
section, its train section resolved with the family's loss settings, and the constructor arguments that every
network of the family is built with; and the config.yaml of a tiny run of StyleGAN2, HA-GAN, WGAN-GP and
α-GAN. Keys added since (new options) are allowed; a key that disappears or a value that changes fails.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from medgan3d.config import load_preset, model_config_from_dict
from medgan3d.training.family import family_for
from medgan3d.training.loop import train_config_from_dict

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
PINNED: dict[str, dict[str, Any]] = json.loads(
    (FIXTURES / "resolved_presets.json").read_text(encoding="utf-8")
)
LEGACY_RUNS = sorted((FIXTURES / "legacy_runs").glob("*.yaml"))


def plain(value: Any) -> Any:
    """JSON types, as the fixture holds them (tuples become lists)."""
    return json.loads(json.dumps(value))


def missing_or_changed(old: Any, new: Any, where: str = "") -> list[str]:
    """Every key of ``old`` that ``new`` lacks or holds with another value (``new`` may have more keys)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            p
            for k, v in old.items()
            for p in (missing_or_changed(v, new[k], f"{where}.{k}") if k in new else [f"{where}.{k} missing"])
        ]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def networks(model: Any) -> dict[str, Any]:
    with torch.device("meta"):
        nets = (
            model.build_networks()
            if hasattr(model, "build_networks")
            else {"G": model.build_generator(), "D": model.build_discriminator()}
        )
    return {name: net.config for name, net in nets.items()}


def resolved(name: str) -> dict[str, Any]:
    preset = load_preset(name)
    train = preset.train
    header = {
        k: getattr(preset, k) for k in ("name", "description", "reference", "paper_params_m", "data_preset")
    }
    return plain(
        {
            "preset": header,
            "model": preset.model.to_dict(),
            "train": train.to_dict(),
            "networks": networks(preset.model),
        }
    )


def test_the_fixture_covers_every_preset_and_twin() -> None:
    from medgan3d.config import list_presets

    assert set(list_presets()) <= set(PINNED)
    assert {f"{n}-2d" for n in ("tiny", "coca-ss", "coca-baseline", "3dstylegan-2mm")} <= set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_preset_resolves_to_the_pinned_values(name: str) -> None:
    assert missing_or_changed(PINNED[name], resolved(name)) == []


def test_the_comparison_catches_a_changed_or_missing_value() -> None:
    old = {"train": {"batch": 8, "loss": {"r1_gamma": 0.0512}}}
    assert missing_or_changed(old, {"train": {"batch": 8, "loss": {"r1_gamma": 0.0512}, "aug": {}}}) == []
    assert missing_or_changed(old, {"train": {"batch": 4, "loss": {}}}) == [
        ".train.batch: 8 -> 4",
        ".train.loss.r1_gamma missing",
    ]


@pytest.mark.parametrize("path", LEGACY_RUNS, ids=[p.stem for p in LEGACY_RUNS])
def test_an_old_run_config_reads_to_the_values_it_was_written_with(path: Path) -> None:
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    model = model_config_from_dict(saved["model"], str(path))
    train = train_config_from_dict(saved["train"], str(path), family_for(model))
    assert missing_or_changed(saved["model"], plain(model.to_dict())) == []
    assert missing_or_changed(saved["train"], plain(train.to_dict())) == []
    preset = PINNED[saved["preset"]]
    assert missing_or_changed(preset["model"], plain(model.to_dict())) == []
    assert missing_or_changed(preset["networks"], plain(networks(model))) == []


def test_an_old_run_folder_resumes_bit_identically(tmp_path: Path) -> None:
    """A run whose config.yaml was written by the pre-refactor code continues as an uninterrupted run."""
    from safetensors.torch import load_file

    from medgan3d.data import make_brain_phantoms
    from medgan3d.training.checkpoint import list_checkpoints
    from medgan3d.training.loop import train

    data = tmp_path / "brain16"
    make_brain_phantoms(12, data, seed=0, shape=(16, 16, 16))
    legacy = (FIXTURES / "legacy_runs" / "tiny.yaml").read_text(encoding="utf-8")
    legacy = legacy.replace("DATA_FOLDER", str(data.resolve()))
    saved = yaml.safe_load(legacy)
    model = model_config_from_dict(saved["model"])
    half_cfg = train_config_from_dict(saved["train"], family=family_for(model))
    full_cfg = train_config_from_dict(saved["train"] | {"kimg": 0.064}, family=family_for(model))
    full = train(data, model, full_cfg, outdir=tmp_path / "a", preset="tiny")
    half = train(data, model, half_cfg, outdir=tmp_path / "b", preset="tiny")
    (half / "config.yaml").write_text(legacy, encoding="utf-8")  # the run folder as the old code left it
    resumed = train(data, model, full_cfg, resume=half)
    assert resumed == half

    def weights(run: Path) -> dict[str, torch.Tensor]:
        ckpt = list_checkpoints(run)[-1]
        return {
            f"{n}.{k}": v
            for n in ("G", "G_ema", "D")
            for k, v in load_file(ckpt / n / "model.safetensors").items()
        }

    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rewritten = yaml.safe_load((resumed / "config.yaml").read_text(encoding="utf-8"))
    assert missing_or_changed(saved | {"train": saved["train"] | {"kimg": 0.064}}, rewritten) == []


# ------------------------------------------------------------------------------------ one reader, one writer


def preset_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nmodel:\n  num_blocks: 3\n" + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  lr_g: 1.0\n", r"x\.yaml: unknown train key 'lr_g' \(known: kimg, batch, batch_gpu, lr, "),
        (
            "train:\n  loss:\n    lr_g: 1.0\n",
            r"x\.yaml: unknown stylegan2 loss key 'lr_g' \(known: r1_gamma, ",
        ),
        ("trian:\n  batch: 4\n", r"x\.yaml: unknown preset key 'trian' \(known: name, model, description, "),
        ("train:\n  batch: eight\n", r"x\.yaml: train key 'batch' must be an integer, got 'eight'$"),
        (
            "train:\n  lr: 1e-4\n",
            r"train key 'lr' must be a number or null, got '1e-4' \(YAML reads 1e-4 as text",
        ),
        ("train:\n  flip: 1\n", r"train key 'flip' must be true or false, got 1$"),
        ("train:\n  betas: [0.5]\n", r"train key 'betas' must be a list of 2 numbers or null, got \(0\.5,\)"),
        ("train:\n  batch: 0\n", r"x\.yaml: train: batch must be an integer >= 1, got 0$"),
        ("train: [1, 2]\n", r"x\.yaml: the train section must be a mapping, got list$"),
        (
            "train:\n  metrics: [fid, fdi]\n",
            r"x\.yaml: train: unknown metrics \['fdi'\]; choose from \['fid', 'fid_3d', ",
        ),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_the_file_section_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    from medgan3d.config import ConfigError

    with pytest.raises(ConfigError, match=message) as info:
        load_preset(preset_yaml(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_model_key_of_another_family_is_refused_by_name(tmp_path: Path) -> None:
    from medgan3d.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"unknown hagan model key 'num_blocks' \(known: resolution, latent_dim, width, labels\)",
    ):
        model_config_from_dict({"family": "hagan", "num_blocks": 3}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x\.yaml: unknown model family 'gan' \(known: stylegan2, hagan, "):
        model_config_from_dict({"family": "gan"}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x\.yaml: train\.loss needs the model family"):
        train_config_from_dict({"loss": {"r1_gamma": 1}}, "x.yaml")


@pytest.mark.parametrize("name", sorted(PINNED))
def test_to_dict_and_from_dict_are_inverse_for_every_preset(name: str) -> None:
    from medgan3d.config import from_dict, preset_from_dict, preset_to_yaml, to_dict

    preset = load_preset(name)
    assert model_config_from_dict(yaml.safe_load(yaml.safe_dump(preset.model.to_dict()))) == preset.model
    again = train_config_from_dict(
        yaml.safe_load(yaml.safe_dump(preset.train.to_dict())), family=preset.model
    )
    assert again == preset.train
    assert from_dict(type(preset.train.loss), to_dict(preset.train.loss)) == preset.train.loss
    assert preset_from_dict(yaml.safe_load(preset_to_yaml(preset))) == preset


def test_every_family_reads_the_loss_settings_its_model_config_names() -> None:
    import medgan3d.training.families  # noqa: F401  (registers the shipped families)
    from medgan3d.config import MODEL_CONFIGS
    from medgan3d.training.family import FAMILIES

    assert set(MODEL_CONFIGS) <= set(FAMILIES)
    for name, cls in MODEL_CONFIGS.items():
        assert FAMILIES[name]().loss_cls is cls.loss_cls, name


# ------------------------------------------------------------------------------------ defaults in one place


@pytest.mark.parametrize("family", ["stylegan2", "hagan", "wgan-gp", "vae-gan", "alpha-gan", "alpha-wgan-gp"])
def test_a_default_model_config_builds_the_networks_constructors_build_by_default(family: str) -> None:
    """The model defaults are read from the constructors: a config left at its defaults builds every network
    with the constructor's own defaults (WGAN-GP's critic head is the one family choice that differs)."""
    from medgan3d.config import MODEL_CONFIGS

    model = MODEL_CONFIGS[family]()
    with torch.device("meta"):
        built = model.build_networks()
        plain_nets = {name: cls() for name, cls in model.networks.items()}
    for name, net in built.items():
        expected = (
            plain_nets[name].config["args"]
            | ({"stem": "transposed"} if family.startswith("alpha") and name == "G" else {})
            | ({"head": "patch"} if family == "wgan-gp" and name == "D" else {})
        )
        assert net.config["args"] == expected, name


def test_each_model_key_names_the_constructor_argument_it_becomes() -> None:
    from medgan3d.config import ModelConfig
    from medgan3d.networks import Discriminator, Generator

    model = ModelConfig(g_variant="split", d_variant="group", d_group_count=2, g_architecture="orig")
    assert (
        model.network_kwargs("G")["variant"] == "split"
        and model.network_kwargs("G")["architecture"] == "orig"
    )
    assert model.network_kwargs("D")["variant"] == "group" and model.network_kwargs("D")["group_count"] == 2
    # every constructor argument comes from a model key, but those the family fixes or derives (labels → c_dim)
    # (D's label mapping keeps its own depth: mapping_layers is G's)
    fixed = {"mapping_lr_multiplier", "c_dim", "cmap_dim"}
    assert set(model.network_kwargs("G")) == set(inspect.signature(Generator).parameters) - fixed
    assert set(model.network_kwargs("D")) == set(inspect.signature(Discriminator).parameters) - fixed - {
        "mapping_layers"
    }


def test_constructors_that_disagree_on_a_default_are_refused() -> None:
    from medgan3d.config import arg

    class A:
        def __init__(self, width: int = 16) -> None: ...

    class B:
        def __init__(self, width: int = 32) -> None: ...

    assert arg("w", {A: "width"}).default == 16
    with pytest.raises(TypeError, match="one default"):
        arg("w", {A: "width", B: "width"})


# ------------------------------------------------------------------------------------ evaluation settings

# a value other than the default for every field of MetricsConfig
EVAL_CHANGED: dict[str, Any] = {
    "metrics": ["fid", "is"],
    "extractor_2d": "random-2d",
    "extractor_3d": "medicalnet-r18",
    "weights_2d": "random",
    "weights_3d": "weights/r18.pth",
    "extractor_seed": 3,
    "download": True,
    "all_slices": True,
    "split": "val",
    "num_real": 10,
    "ms_ssim_pairs": 7,
    "kid_subsets": 9,
    "bootstrap": 0,
    "seed": 5,
    "batch_size": 2,
    "device": "cuda",
    "cache": "cache",
    "use_cache": False,
    "classifier": "clf",
    "is_splits": 2,
    "slice_source": "window",
    "label": 1.0,
}


def test_evaluation_settings_round_trip_through_yaml() -> None:
    from medgan3d.config import MetricsConfig, from_dict, to_dict

    fields = {f.name: f.default for f in dataclasses.fields(MetricsConfig)}
    assert sorted(EVAL_CHANGED) == sorted(fields), "give every field a changed value"
    assert all(EVAL_CHANGED[k] != (list(d) if isinstance(d, tuple) else d) for k, d in fields.items())
    for data in ({}, EVAL_CHANGED):
        settings = from_dict(MetricsConfig, data, "eval.yaml", "metrics")
        text = yaml.safe_dump(to_dict(settings))
        assert from_dict(MetricsConfig, yaml.safe_load(text), "eval.yaml", "metrics") == settings
        assert to_dict(settings) == {k: data.get(k, to_dict(MetricsConfig())[k]) for k in fields}
    assert MetricsConfig(cache=Path("cache"), metrics=["fid"]) == MetricsConfig(
        cache="cache", metrics=("fid",)
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"metric": ["fid"]}, r"^eval\.yaml: unknown metrics key 'metric' \(known: metrics, extractor_2d, "),
        (
            {"metrics": ["fid", "fdi"]},
            r"^eval\.yaml: metrics: unknown metrics \['fdi'\]; choose from \['fid', ",
        ),
        ({"bootstrap": "many"}, r"^eval\.yaml: metrics key 'bootstrap' must be an integer, got 'many'$"),
        ({"cache": 5}, r"^eval\.yaml: metrics key 'cache' must be a string or null, got 5$"),
        ({"split": "tran"}, r"^eval\.yaml: metrics: split 'tran' is not one of all, train, val$"),
        (
            {"slice_source": "every"},
            r"^eval\.yaml: metrics: slice_source 'every' is not one of auto, all, window$",
        ),
    ],
)
def test_evaluation_settings_refuse_a_bad_key_or_value_in_one_line(data: dict, message: str) -> None:
    from medgan3d.config import ConfigError, MetricsConfig, from_dict

    with pytest.raises(ConfigError, match=message) as info:
        from_dict(MetricsConfig, data, "eval.yaml", "metrics")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- the docs


def test_docs_configuration_md_lists_every_key_with_the_codes_default_and_meaning() -> None:
    from medgan3d.config import SCHEMA_BEGIN, SCHEMA_END, schema_markdown, schema_sections

    for _, cls, skip in schema_sections():
        undocumented = [
            f.name for f in dataclasses.fields(cls) if f.name not in skip and not f.metadata.get("doc")
        ]
        assert undocumented == [], cls.__name__
    text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    generated = SCHEMA_BEGIN + text.split(SCHEMA_BEGIN, 1)[1].split(SCHEMA_END, 1)[0] + SCHEMA_END + "\n"
    assert generated == schema_markdown(), (
        'docs/configuration.md disagrees with config.py: run PYTHONPATH=src python -c "from medgan3d.config '
        "import update_schema_doc; update_schema_doc('docs/configuration.md')\""
    )
    assert "| `lr_g` | `0.0001` |" in text and "| `g_variant` | `split_shuffle` |" in text


@pytest.mark.parametrize(
    "name, order", [("vae-gan-tiny", ("E", "G", "D")), ("alpha-gan-tiny", ("E", "CD", "G", "D"))]
)
def test_seeded_networks_draw_their_initial_weights_in_the_pre_refactor_order(
    name: str, order: tuple[str, ...]
) -> None:
    """The old build_networks constructed the encoders before G and D; the seeded initial weights keep that."""
    model = load_preset(name).model
    torch.manual_seed(0)
    built = model.build_networks()
    torch.manual_seed(0)
    old = {n: model.networks[n](**model.network_kwargs(n)) for n in order}
    assert list(built) == list(model.networks)
    for n, net in built.items():
        for (k, v), w in zip(net.state_dict().items(), old[n].state_dict().values(), strict=True):
            assert torch.equal(v, w), (n, k)


def test_metric_names_parse_in_order_and_refuse_in_one_line() -> None:
    from medgan3d.config import parse_metric_names
    from medgan3d.errors import UsageError

    assert parse_metric_names(" psnr, fid ,,kid") == ("psnr", "fid", "kid")
    with pytest.raises(UsageError) as err:
        parse_metric_names("fid,fdi,lpips", "--metrics")
    assert str(err.value) == (
        "--metrics 'fid,fdi,lpips': unknown metrics ['fdi', 'lpips']; "
        "choose from fid,fid_3d,kid,mmd,ms_ssim,psnr,memorisation,is"
    )
    with pytest.raises(UsageError, match=r"^--metrics ' , ': no metric names; choose from fid,"):
        parse_metric_names(" , ")


def test_train_metrics_settings_read_as_evaluation_settings_and_stay_out_of_old_files() -> None:
    from medgan3d.config import ConfigError, MetricsConfig, TrainConfig, train_config_from_dict

    cfg = train_config_from_dict(
        {"metrics": ["fid"], "metrics_settings": {"weights_2d": "inc.pt", "bootstrap": 0}}
    )
    assert cfg.metrics_settings == MetricsConfig(weights_2d="inc.pt", bootstrap=0)
    assert cfg.to_dict()["metrics_settings"]["weights_2d"] == "inc.pt"
    assert (
        "metrics_settings" not in TrainConfig().to_dict()
    )  # left out at its default: pinned files unchanged
    with pytest.raises(
        ConfigError, match=r"^x\.yaml: unknown train\.metrics_settings key 'weights2d' \(known: "
    ):
        train_config_from_dict({"metrics_settings": {"weights2d": "inc.pt"}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.yaml: train\.metrics_settings: split 'tran' is not one of"):
        train_config_from_dict({"metrics_settings": {"split": "tran"}}, "x.yaml")
