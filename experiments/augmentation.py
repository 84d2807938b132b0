"""Does synthetic data help a classifier? Real vs real + class-conditional synthetic training volumes.

The protocol of Sun et al.'s data-augmentation experiment (HA-GAN, IEEE JBHI 2022, §IV, "data augmentation"
table: a 3D classifier trained on the real training set, then on it plus volumes sampled from the conditional
HA-GAN, accuracy and AUC on held-out real volumes): per seed, a class-conditional GAN is trained on the small
labelled real set, ``--synthetic`` volumes per class are sampled from it, and a small 3D classifier (MONAI's
DenseNet, ``spatial_dims=3``) is trained for the same number of steps on (a) the real set, (b) real +
synthetic, (c) synthetic alone, then scored on a larger held-out real set. Every seed repeats everything (GAN,
sampling, classifier), so the intervals cover the GAN's variability too. The classifier trained on the real set
also labels the synthetic volumes (GAN-test, Shmelkov et al., ECCV 2018): whether they show their class.

    python experiments/augmentation.py --out OUT [--data LABELLED --test-data LABELLED] [--seeds 0,1,2]

Without ``--data`` the labelled brain phantom is used (two classes: normal, enlarged ventricles; docs/data.md):
``--train-subjects`` for training and ``--test-subjects`` fresh subjects of another population seed for the
test. Writes ``OUT/augmentation.csv`` (one row per seed and training set) and ``OUT/augmentation.md`` (mean ±
95 % Student-t interval over the seeds); GAN runs are kept in ``OUT/runs/`` and reused when present.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import mean_ci

TRAINING_SETS = ("real", "real + synthetic", "synthetic")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, help="labelled prepared dataset to train on (default: brain phantom)")
    p.add_argument("--test-data", type=Path, help="labelled prepared dataset to test on (with --data)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (each: GAN, samples, classifier)")
    p.add_argument(
        "--train-subjects", type=int, default=16, help="phantom training subjects (half per class)"
    )
    p.add_argument("--test-subjects", type=int, default=64, help="phantom test subjects")
    p.add_argument("--shape", type=int, default=16, help="phantom side (voxels)")
    p.add_argument("--config", default="tiny", help="StyleGAN2 preset of the conditional GAN")
    p.add_argument("--gan-kimg", type=float, default=1.0, help="GAN training length (thousands of images)")
    p.add_argument("--gan-batch", type=int, default=8)
    p.add_argument("--synthetic", type=int, default=32, help="synthetic volumes per class")
    p.add_argument("--psi", type=float, default=1.0, help="truncation of the synthetic samples")
    p.add_argument(
        "--steps", type=int, default=200, help="classifier steps (the same for every training set)"
    )
    p.add_argument("--batch", type=int, default=16, help="classifier minibatch")
    p.add_argument("--lr", type=float, default=1e-3, help="classifier Adam learning rate")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ data
def datasets(args: argparse.Namespace) -> tuple[Path, Path]:
    """The labelled training and test datasets (made from the brain phantom unless given)."""
    from medgan3d.data import make_brain_phantoms

    if args.data is not None:
        if args.test_data is None:
            raise SystemExit(
                "--data needs --test-data (held-out labelled volumes to score the classifier on)"
            )
        return args.data, args.test_data
    shape = (args.shape,) * 3
    train, test = args.out / "data-train", args.out / "data-test"
    if not (train / "dataset.json").is_file():
        make_brain_phantoms(args.train_subjects, train, seed=0, shape=shape, labelled=True, val_fraction=0.0)
    if not (test / "dataset.json").is_file():
        make_brain_phantoms(args.test_subjects, test, seed=1000, shape=shape, labelled=True, val_fraction=0.0)
    return train, test


def load_labelled(root: Path) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Every volume ``[N, 1, D, H, W]`` of a labelled dataset, its class positions ``[N]`` and its label spec."""
    from medgan3d.data import open_volumes
    from medgan3d.data.labels import item_labels, spec_of
    from medgan3d.data.manifest import Manifest

    manifest = Manifest.load(root)
    spec = spec_of(manifest)
    if spec is None or spec.kind != "class":
        raise SystemExit(f"{root}: needs class labels (prepare --labels)")
    x = torch.from_numpy(np.asarray(open_volumes(root, manifest), dtype=np.float32))
    return x, spec.index(item_labels(manifest, range(len(manifest.items)))), spec


# ------------------------------------------------------------------------------------------ GAN
def train_gan(args: argparse.Namespace, data: Path, seed: int) -> Path:
    """A conditional GAN on the real training set (reused when its run finished before)."""
    from medgan3d.config import load_preset
    from medgan3d.training.checkpoint import list_checkpoints
    from medgan3d.training.loop import TrainConfig, train

    runs = args.out / "runs"
    found = sorted(runs.glob(f"*-gan-seed{seed}")) if runs.is_dir() else []
    cfg = TrainConfig(
        kimg=args.gan_kimg,
        batch=args.gan_batch,
        batch_gpu=args.gan_batch,
        seed=seed,
        tick_kimg=args.gan_kimg / 4,
        snapshot_ticks=4,
        grid=4,
    )
    if found:
        folder = found[-1]
        last = list_checkpoints(folder)
        if last and int(last[-1].name.split("-")[-1]) >= round(args.gan_kimg * 1000):
            return folder
        if last:  # an interrupted run: continue it
            return train(data, None, cfg, resume=folder)
    return train(
        data, load_preset(args.config).model, cfg, outdir=runs, desc=f"gan-seed{seed}", preset=args.config
    )


def synthetic_set(
    run: Path, spec: Any, per_class: int, seed: int, psi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` volumes of every class from the run's G_ema (seeded latents), and their class positions."""
    from medgan3d.sampling import sample
    from medgan3d.training.checkpoint import load_generator

    G = load_generator(run).eval()
    vols, targets = [], []
    for k, label in enumerate(spec.classes):
        c = spec.encode([label] * per_class)
        start = 1_000_000 * (seed + 1) + k * per_class
        vols.append(sample(G, range(start, start + per_class), psi, c=c)[:, 0])
        targets += [k] * per_class
    return torch.cat(vols).clamp(-1, 1).unsqueeze(1), torch.tensor(targets)


# ------------------------------------------------------------------------------------------ classifier
def classifier(num_classes: int) -> torch.nn.Module:
    """A small 3D DenseNet (MONAI; Huang et al., "Densely Connected Convolutional Networks", CVPR 2017)."""
    from monai.networks.nets import DenseNet

    return DenseNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=num_classes,
        init_features=8,
        growth_rate=8,
        block_config=(2, 2, 2),
        bn_size=2,
    )


def train_classifier(
    x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, seed: int
) -> torch.nn.Module:
    """``args.steps`` Adam steps on minibatches drawn with replacement (random left-right flips)."""
    torch.manual_seed(seed)
    net = classifier(int(y.max()) + 1 if len(y) else 2)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(args.steps):
        idx = torch.randint(0, len(x), (args.batch,), generator=g)
        xb = x[idx]
        flip = torch.rand(len(idx), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None, None], xb.flip(-1), xb)
        loss = F.cross_entropy(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def scores(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy and ROC AUC (of class 1's probability; one-vs-rest macro AUC for more classes)."""
    from sklearn.metrics import roc_auc_score

    prob = torch.cat([net(x[i : i + 32]).softmax(1) for i in range(0, len(x), 32)]).numpy()
    acc = float((prob.argmax(1) == y.numpy()).mean())
    auc = (
        roc_auc_score(y.numpy(), prob[:, 1])
        if prob.shape[1] == 2
        else roc_auc_score(y.numpy(), prob, multi_class="ovr")
    )
    return {"accuracy": acc, "auc": float(auc)}


# ------------------------------------------------------------------------------------------ driver
def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train_dir, test_dir = datasets(args)
    x_real, y_real, spec = load_labelled(train_dir)
    x_test, y_test, test_spec = load_labelled(test_dir)
    if test_spec != spec:
        raise SystemExit(
            f"{test_dir}: classes {test_spec.classes} differ from the training set's {spec.classes}"
        )
    records = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        t0 = time.perf_counter()
        gan = train_gan(args, train_dir, seed)
        x_syn, y_syn = synthetic_set(gan, spec, args.synthetic, seed, args.psi)
        sets = {
            "real": (x_real, y_real),
            "real + synthetic": (torch.cat([x_real, x_syn]), torch.cat([y_real, y_syn])),
            "synthetic": (x_syn, y_syn),
        }
        for name, (x, y) in sets.items():
            net = train_classifier(x, y, args, seed)
            record = {
                "seed": seed,
                "training_set": name,
                "n_train": len(x),
                "n_test": len(x_test),
                **scores(net, x_test, y_test),
                "synthetic_accuracy": "",
            }
            if (
                name == "real"
            ):  # GAN-test: do the synthetic volumes look like their class to a real-trained model?
                record["synthetic_accuracy"] = scores(net, x_syn, y_syn)["accuracy"]
            records.append(record)
            print(
                f"seed {seed} · {name:17s} · n {len(x):3d} · accuracy {record['accuracy']:.3f} · "
                f"AUC {record['auc']:.3f}",
                flush=True,
            )
        fidelity = next(r["synthetic_accuracy"] for r in records[-3:] if r["training_set"] == "real")
        print(
            f"seed {seed} · the real-trained classifier labels the synthetic volumes with accuracy {fidelity:.3f}"
        )
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return records


def table(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    seeds = sorted({r["seed"] for r in records})
    lines = ["| training set | n train | accuracy | AUC |", "|---|---|---|---|"]
    for name in TRAINING_SETS:
        rows = [r for r in records if r["training_set"] == name]
        if not rows:
            continue
        cells = []
        for key in ("accuracy", "auc"):
            mean, half = mean_ci([r[key] for r in rows])
            cells.append(f"{mean:.3f}" + ("" if np.isnan(half) else f" ± {half:.3f}"))
        lines.append(f"| {name} | {rows[0]['n_train']} | {cells[0]} | {cells[1]} |")
    n_test = records[0]["n_test"] if records else 0
    fidelity = [r["synthetic_accuracy"] for r in records if r["training_set"] == "real"]
    if fidelity:
        mean, half = mean_ci(fidelity)
        lines.append("")
        lines.append(
            f"The classifier trained on the real set gives the synthetic volumes their intended class with "
            f"accuracy {mean:.3f}" + ("" if np.isnan(half) else f" ± {half:.3f}") + " (GAN-test, Shmelkov et "
            'al., "How good is my GAN?", ECCV 2018): how much of the class the conditional GAN renders.'
        )
    lines.append("")
    lines.append(
        f"Mean ± 95 % Student-t half-width over seeds {', '.join(map(str, seeds))}; {n_test} held-out real "
        f"test volumes; {args.steps} classifier steps of {args.batch} for every training set; conditional "
        f"GAN `{args.config}` trained {args.gan_kimg:g} kimg per seed, {args.synthetic} synthetic volumes "
        f"per class (ψ {args.psi:g})."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records = run(args)
    with open(args.out / "augmentation.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    text = table(records, args)
    (args.out / "augmentation.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"augmentation: {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
