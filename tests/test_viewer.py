"""The volume viewer (``medgan3d view`` and the report's viewer) in a real headless Chromium.

The page is loaded from disk with every network request recorded; the tests read the drawn canvases back and
compare them with the volumes quantised and windowed in numpy, then check that sliders, the mouse wheel, a
click, the volume selector and the window sliders change what is drawn.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medgan3d.cli.main import run as cli
from medgan3d.data import make_brain_phantoms, write_nifti
from medgan3d.viewer import LEVELS, ViewGroup, ViewVolume, combine, payload, quantize
from medgan3d.viz import IntensityWindow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    path = os.environ.get("MEDGAN3D_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "no Chromium on this machine (as root: `make browser`, i.e. apt-get install chromium); "
            "the viewer is tested in a real browser only"
        )
    return path


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')"
    )
    path = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, page_path: Path):
    """The page, loaded from disk, with its errors and every request it made."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    url = page_path.resolve().as_uri()
    page.goto(url)
    page.wait_for_function(
        "window.medgan3dViewers && window.medgan3dViewers.length > 0 && "
        "window.medgan3dViewers.every(v => v.renders > 0)"
    )
    assert errors == []
    folder = page_path.resolve().parent.as_uri() + "/"
    outside = [r for r in requests if not (r.startswith(folder) or r.startswith("data:"))]
    assert outside == [], "the page must load nothing but itself and its own figures"
    return page


def _pixels(page, group: str, plane: str) -> np.ndarray:
    """The grey channel of one drawn canvas, ``[height, width]``."""
    url = page.evaluate(
        """([g, p]) => document.querySelector(`canvas.mv-slice[data-group="${g}"][data-plane="${p}"]`)
           .toDataURL("image/png")""",
        [group, plane],
    )
    png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return np.asarray(png.convert("RGB"))[..., 0].astype(np.int16)


def _expected_axial(volume: np.ndarray, k: int, lo: float, hi: float, wlo: float, whi: float) -> np.ndarray:
    """Slice ``k`` as the page should draw it: quantised over [lo, hi], windowed to [wlo, whi], rows flipped."""
    q = quantize(volume[k], lo, hi).astype(np.float64)
    values = lo + q / LEVELS * (hi - lo)
    return np.round(np.clip((values - wlo) / (whi - wlo), 0, 1) * 255)[::-1]


def _cell_centres(
    expected: np.ndarray, shape: tuple[int, int], margin: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Canvas pixels at the centre of every voxel cell away from the edges (where the letters are drawn)."""
    rows, cols = expected.shape
    h, w = shape
    ys = ((np.arange(rows) + 0.5) * h / rows).astype(int)
    xs = ((np.arange(cols) + 0.5) * w / cols).astype(int)
    keep_r = (ys > margin) & (ys < h - margin)
    keep_c = (xs > margin) & (xs < w - margin)
    return np.ix_(np.flatnonzero(keep_r), np.flatnonzero(keep_c)), np.ix_(ys[keep_r], xs[keep_c])


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """A prepared anisotropic dataset and a folder of two NIfTI volumes with 2 × 1 × 1.5 mm voxels."""
    root = tmp_path_factory.mktemp("viewer")
    make_brain_phantoms(4, root / "brain", seed=0, shape=(16, 32, 24))
    rng = np.random.default_rng(0)
    folder = root / "nifti"
    for i in range(2):
        vol = rng.normal(40.0, 20.0, (12, 20, 16)).astype(np.float32)
        vol[3:9, 5:15, 4:12] += 100.0 * (i + 1)
        write_nifti(folder / f"vol{i}.nii.gz", vol, spacing=(2.0, 1.0, 1.5))
    return {"dataset": root / "brain", "nifti": folder, "root": root}


def test_quantize_and_payload_against_numpy() -> None:
    vol = np.linspace(-500.0, 1500.0, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    q = quantize(vol, -250.0, 650.0)
    expect = np.round(np.clip((vol.astype(np.float64) + 250.0) / 900.0, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(q, expect) and q.min() == 0 and q.max() == 255
    data = payload(
        [ViewGroup("g", [ViewVolume("v", vol, (2.0, 1.0, 1.0))])], (-250.0, 650.0), (0.0, 100.0), "HU"
    )
    stored = np.frombuffer(base64.b64decode(data["groups"][0]["volumes"][0]["data"]), dtype=np.uint8)
    assert np.array_equal(stored.reshape(2, 3, 4), expect)
    assert data["window"] == [0.0, 100.0] and data["unit"] == "HU"
    assert data["groups"][0]["volumes"][0]["spacing"] == [2.0, 1.0, 1.0]


def test_combine_prefers_the_trained_window_and_pools_unknown_units() -> None:
    vol = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    known = combine_sources(vol, IntensityWindow(-250.0, 650.0, "HU", "window"))
    assert known["range"] == [-250.0, 650.0] and known["window"] == [-250.0, 650.0] and known["unit"] == "HU"
    unknown = combine_sources(vol, None)
    assert unknown["range"] == pytest.approx([np.percentile(vol, 0.5), np.percentile(vol, 99.5)])
    assert unknown["unit"] == "values"


def combine_sources(vol: np.ndarray, window: IntensityWindow | None) -> dict:
    from medgan3d.viewer import Source

    return combine([Source([ViewGroup("g", [ViewVolume("v", vol)])], window)])


def test_view_cli_refuses_bad_input(tmp_path, capsys) -> None:
    assert cli(["view", str(tmp_path / "missing"), "-o", str(tmp_path / "v.html")]) == 1
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert cli(["view", str(tmp_path), "--window", "5", "-o", str(tmp_path / "v.html")]) == 2
    assert "--window '5': expected LO,HI" in capsys.readouterr().err
    assert cli(["view", str(tmp_path), "-o", str(tmp_path / "v.png")]) == 2
    assert cli(["view", str(tmp_path), "-o", str(tmp_path / "v.html")]) == 1  # an empty folder
    assert "no volume files" in capsys.readouterr().err
    assert not (tmp_path / "v.html").exists()


def test_view_page_renders_scrolls_and_windows_in_chromium(browser, sources, capsys) -> None:
    out = sources["root"] / "view.html"
    assert cli(["view", str(sources["dataset"]), str(sources["nifti"]), "-n", "3", "-o", str(out)]) == 0
    assert "-> " in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'class="mv-data">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))
    lo, hi = data["range"]
    wlo, whi = data["window"]
    manifest = json.loads((sources["dataset"] / "dataset.json").read_text(encoding="utf-8"))
    trained = (manifest["intensity"]["lo"], manifest["intensity"]["hi"])
    assert (wlo, whi) == trained  # shown first: the trained window
    nifti = np.concatenate(
        [nib.load(f).get_fdata().ravel() for f in sorted(sources["nifti"].glob("*.nii.gz"))]
    )
    pooled = np.percentile(nifti, [0.5, 99.5])  # the folder of unknown units: its percentiles
    assert (lo, hi) == pytest.approx((min(trained[0], pooled[0]), max(trained[1], pooled[1])))
    page = _open(browser, out)
    group, other = data["groups"][0]["name"], data["groups"][1]["name"]
    assert [len(g["volumes"]) for g in data["groups"]] == [3, 2]

    # every canvas drawn with content, at the mm aspect of its volume's spacing (one scale for every pane)
    mm_per_px = page.evaluate("window.medgan3dViewers[0].mmPerPx")
    for g in data["groups"]:
        (d, h, w), (sd, sh, sw) = g["volumes"][0]["shape"], g["volumes"][0]["spacing"]
        for plane, (rows, cols, rmm, cmm) in {
            "axial": (h, w, sh, sw),
            "coronal": (d, w, sd, sw),
            "sagittal": (d, h, sd, sh),
        }.items():
            px = _pixels(page, g["name"], plane)
            assert px.std() > 5, f"{g['name']} {plane} is blank"
            js_round = lambda x: int(np.floor(x + 0.5))  # noqa: E731  (Math.round, not banker's rounding)
            assert px.shape == (
                js_round(rows * rmm / mm_per_px),
                js_round(cols * cmm / mm_per_px),
            )  # mm aspect

    # the axial slice drawn equals the volume's slice quantised and windowed independently
    real = np.asarray(
        np.load(sources["dataset"] / "volumes.npy")[manifest["splits"]["train"][0], 0], np.float32
    )
    units = IntensityWindow.of_intensity(manifest["intensity"]).to_units(real)
    k = round(0.5 * (real.shape[0] - 1))
    expected = _expected_axial(units, k, lo, hi, wlo, whi)
    px = _pixels(page, group, "axial")
    sel_e, sel_p = _cell_centres(expected, px.shape)
    assert np.abs(px[sel_p] - expected[sel_e]).max() <= 1

    # a slider moves the axial slice (to the independently computed slice 3)
    page.locator(".mv-pos[data-plane=axial]").fill("3")
    moved = _pixels(page, group, "axial")
    assert np.abs(moved[sel_p] - _expected_axial(units, 3, lo, hi, wlo, whi)[sel_e]).max() <= 1
    assert not np.array_equal(moved, px)
    assert page.locator("figcaption").first.inner_text() == f"axial 4/{real.shape[0]}"

    # the mouse wheel over a coronal plane scrolls it (in both panes)
    before = [_pixels(page, g, "coronal") for g in (group, other)]
    box = page.locator(f"canvas.mv-slice[data-group='{group}'][data-plane=coronal]").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(4):
        page.mouse.wheel(0, 120)
    after = [_pixels(page, g, "coronal") for g in (group, other)]
    assert all(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))

    # a click on the axial plane moves the sagittal slice to the clicked column
    sag = _pixels(page, group, "sagittal")
    box = page.locator(f"canvas.mv-slice[data-group='{group}'][data-plane=axial]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.15, box["y"] + box["height"] / 2)
    assert not np.array_equal(_pixels(page, group, "sagittal"), sag)

    # the next volume, and a narrower window, change what is drawn
    first = _pixels(page, group, "axial")
    page.locator(f".mv-pane[data-group='{group}'] .mv-next").click()
    assert not np.array_equal(_pixels(page, group, "axial"), first)
    shown = _pixels(page, group, "axial")
    page.locator(".mv-hi").fill(str(lo + 0.3 * (hi - lo)))
    brighter = _pixels(page, group, "axial")
    assert brighter.mean() > shown.mean() + 5
    page.close()


def test_report_holds_a_working_viewer(browser, sources, tmp_path) -> None:
    import torch

    from medgan3d.metrics import evaluate_volumes_with_artifacts
    from medgan3d.metrics.report import write_report

    make_brain_phantoms(4, tmp_path / "other", seed=1, shape=(16, 32, 24))
    fake = torch.from_numpy(np.load(tmp_path / "other" / "volumes.npy").astype(np.float32))
    result, art = evaluate_volumes_with_artifacts(fake, sources["dataset"], metrics=("psnr",), bootstrap=0)
    page_path = write_report(result, art, tmp_path / "r", viewer_volumes=3)
    page = _open(browser, page_path)
    groups = page.evaluate("window.medgan3dViewers[0].groups.map(g => [g.name, g.volumes.length])")
    assert groups == [["generated", 3], ["real", 3]]
    for name in ("generated", "real"):
        for plane in ("axial", "coronal", "sagittal"):
            assert _pixels(page, name, plane).std() > 5
    before = _pixels(page, "generated", "sagittal")
    page.locator(".mv-pos[data-plane=sagittal]").fill("2")
    assert not np.array_equal(_pixels(page, "generated", "sagittal"), before)
    page.close()


def test_view_of_a_run_shows_its_samples_beside_its_training_volumes(tmp_path, capsys) -> None:
    import torch
    import yaml

    from medgan3d.config import load_preset
    from medgan3d.training.checkpoint import save_checkpoint

    make_brain_phantoms(5, tmp_path / "data", seed=0, shape=(16, 16, 16))
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator().eval()
    run = tmp_path / "00000-tiny"
    save_checkpoint(run, 12000, {"G": G, "G_ema": G}, {}, {"config": {"model": {"family": "stylegan2"}}}, {})
    shutil.copy(tmp_path / "data" / "dataset.json", run / "dataset.json")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": str(tmp_path / "data")}), encoding="utf-8")
    out = tmp_path / "v.html"
    assert cli(["view", str(run), "-n", "2", "--seed", "5", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'class="mv-data">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text(encoding="utf-8"))
    window = IntensityWindow.of_intensity(manifest["intensity"])
    assert data["range"] == [window.lo, window.hi] and data["unit"] == window.unit
    gen, real = data["groups"]
    assert gen["name"] == "generated (00000-tiny, kimg 12, psi 1)" and real["name"] == "real training volumes"
    assert [v["name"] for v in gen["volumes"]] == ["seed 5", "seed 6"]
    for v, seed in zip(gen["volumes"], (5, 6), strict=True):
        z = torch.randn(G.z_dim, generator=torch.Generator().manual_seed(seed))[None]  # the seed's own z
        with torch.no_grad():
            sample = G(z, noise_mode="const")[0, 0].numpy()
        expect = quantize(window.to_units(np.clip(sample, -1, 1)), window.lo, window.hi)
        stored = np.frombuffer(base64.b64decode(v["data"]), np.uint8).reshape(16, 16, 16)
        assert np.abs(stored.astype(int) - expect).max() <= 1
    train = manifest["splits"]["train"][:2]
    reals = np.load(tmp_path / "data" / "volumes.npy")[train, 0]
    for v, vol in zip(real["volumes"], reals, strict=True):
        stored = np.frombuffer(base64.b64decode(v["data"]), np.uint8).reshape(16, 16, 16)
        assert np.abs(stored.astype(int) - quantize(window.to_units(vol), window.lo, window.hi)).max() <= 1
        assert v["spacing"] == pytest.approx(manifest["spacing"])


def test_view_reads_a_dicom_series_as_one_volume(tmp_path) -> None:
    import SimpleITK as sitk

    from medgan3d.viewer import collect

    vol = np.random.default_rng(0).integers(-500, 500, (6, 10, 12)).astype(np.int16)
    folder = tmp_path / "scans" / "ct"
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i, plane in enumerate(vol):
        image = sitk.GetImageFromArray(plane)
        image.SetSpacing((0.8, 0.8))
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"1.2.3.4.{i + 1}",
            "0008|0060": "CT",
            "0020|000d": "1.2.3",
            "0020|000e": "1.2.3.4",
            "0020|0013": str(i + 1),
            "0020|0032": f"0\\0\\{2.5 * i}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "0.8\\0.8",
            "0018|0050": "2.5",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"s{i:02d}.dcm"))
        writer.Execute(image)
    (source,) = collect([tmp_path / "scans"])
    (shown,) = source.groups[0].volumes
    assert shown.array.shape == (6, 10, 12) and shown.spacing == pytest.approx((2.5, 0.8, 0.8))
    assert source.window is None  # unknown units: the page quantises over the pooled percentiles


def test_view_window_option_sets_the_stored_and_shown_range(sources, tmp_path) -> None:
    out = tmp_path / "w.html"
    assert cli(["view", str(sources["nifti"]), "--window", "-100,500", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'class="mv-data">(.*?)</script>', text, re.S).group(1).replace("<\\/", "</"))
    assert data["range"] == [-100.0, 500.0] and data["window"] == [-100.0, 500.0]
    vol = nib.load(sources["nifti"] / "vol0.nii.gz").get_fdata(dtype=np.float32).transpose(2, 1, 0)
    stored = np.frombuffer(base64.b64decode(data["groups"][0]["volumes"][0]["data"]), np.uint8)
    assert np.array_equal(stored.reshape(vol.shape), quantize(vol, -100.0, 500.0))
    assert data["groups"][0]["volumes"][0]["spacing"] == pytest.approx([2.0, 1.0, 1.5])
