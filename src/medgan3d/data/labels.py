"""Per-scan labels for conditional models: ``prepare --labels labels.csv`` and the manifest's ``labels`` block.

A labels CSV has two columns, the source file and its label (an optional header row, e.g. ``file,label``, is
recognised by a second cell that is not a number). A label is an integer class or a float value:

* ``class``: every label is an integer; a model conditions on the one-hot vector of the label's position in
  the sorted list of classes (``c_dim`` = number of classes), as StyleGAN2-ADA does (Karras et al., "Training
  Generative Adversarial Networks with Limited Data", NeurIPS 2020, §C) and HA-GAN's conditional variant.
* ``value``: a float score; the model conditions on the value itself (``c_dim`` = 1).

A CSV row names a scan by the name ``prepare`` reports (its path relative to the source folder), by its file
name, or by its file name without the image suffix; a row for one volume of a stack (``scans.npy[3]``) wins
over a row for the whole file.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from medgan3d.data.manifest import Manifest

from medgan3d.data.io import IMAGE_SUFFIXES, suffix_of
from medgan3d.errors import MedganError

LABEL_KINDS = ("auto", "class", "value")
LABELS_NAME = "labels.csv"  # the copy of the CSV kept in a prepared folder


class LabelError(MedganError, ValueError):
    """A labels CSV that cannot be used; the message names the CSV, the row and the reason."""


@dataclass(frozen=True)
class LabelSpec:
    """What a conditional model conditions on: ``kind`` ``class`` (integer ``classes``) or ``value`` (a float)."""

    kind: str
    classes: tuple[int, ...] = ()
    value_range: tuple[float, float] = (0.0, 1.0)  # values: the training labels' min and max

    def __post_init__(self) -> None:
        if self.kind not in ("class", "value"):
            raise ValueError(f"label kind must be 'class' or 'value', got {self.kind!r}")
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        if self.kind == "class" and len(self.classes) < 1:
            raise ValueError("a class label needs at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct, got {list(self.classes)}")

    @property
    def c_dim(self) -> int:
        """Width of the conditioning vector: one-hot over the classes, or the value itself."""
        return len(self.classes) if self.kind == "class" else 1

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "class":
            return {"kind": "class", "classes": list(self.classes)}
        return {"kind": "value", "range": list(self.value_range)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpec:
        return cls(str(data["kind"]), tuple(data.get("classes", ())), tuple(data.get("range", (0.0, 1.0))))

    def grid(self, n: int) -> list[float]:
        """``n`` labels to show a conditional model with: the classes in turn, or the value range in n steps."""
        if self.kind == "class":
            return [self.classes[i % len(self.classes)] for i in range(n)]
        lo, hi = self.value_range
        return [lo + (hi - lo) * i / max(n - 1, 1) for i in range(n)]

    def check(self, label: float, what: str = "--label") -> float:
        """``label`` as the model takes it; a class the model was not trained on is refused by name."""
        value = float(label)
        if not math.isfinite(value):
            raise LabelError(f"{what} {label!r}: not a finite number")
        if self.kind == "value":
            return value
        if value != int(value) or int(value) not in self.classes:
            known = ", ".join(map(str, self.classes))
            raise LabelError(f"{what} {value:g}: not a class of this model (it knows classes {known})")
        return int(value)

    def encode(self, labels: Sequence[float] | Tensor) -> Tensor:
        """``[N, c_dim]`` float32 conditioning vectors: one-hot rows (class) or the values (value)."""
        values = torch.as_tensor(labels, dtype=torch.float64).reshape(-1)
        if self.kind == "value":
            return values.float().unsqueeze(1)
        index = {c: i for i, c in enumerate(self.classes)}
        rows = torch.tensor([index[int(v)] for v in values.tolist()], dtype=torch.long)
        return torch.nn.functional.one_hot(rows, len(self.classes)).float()

    def index(self, labels: Sequence[float] | Tensor) -> Tensor:
        """Class positions ``[N]`` (long) of class labels, e.g. the target of a classification loss."""
        if self.kind != "class":
            raise ValueError("class positions exist for class labels only")
        index = {c: i for i, c in enumerate(self.classes)}
        return torch.tensor([index[int(v)] for v in torch.as_tensor(labels).reshape(-1).tolist()])


def spec_of(manifest: Manifest) -> LabelSpec | None:
    """The label spec of a prepared dataset's manifest (None when it has no labels)."""
    return None if not manifest.labels else LabelSpec.from_dict(manifest.labels)


def item_labels(manifest: Manifest, indices: Iterable[int]) -> list[float]:
    """The labels of items ``indices`` of a labelled manifest."""
    labels = [manifest.items[i].label for i in indices]
    if any(v is None for v in labels):
        raise ValueError(f"{manifest.path}: the dataset has no labels (prepare --labels)")
    return [v for v in labels if v is not None]


def dataset_labels(manifest: Manifest, n: int, split: str = "all") -> list[float]:
    """``n`` labels with the real set's label distribution: the split's item labels in order, cycled (what a
    conditional model is sampled with when it is scored against that set as a whole)."""
    idx = manifest.indices(split)
    labels = item_labels(manifest, idx)
    if not labels:
        raise ValueError(f"dataset split {split!r} is empty")
    return [labels[i % len(labels)] for i in range(n)]


# --------------------------------------------------------------------------------------------- the CSV
def _number(text: str) -> float | int | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_labels_csv(path: str | os.PathLike[str]) -> dict[str, tuple[int, float | int]]:
    """``{name: (row number, label)}`` from a two-column CSV; one :class:`LabelError` line per problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: cannot read the labels CSV ({exc})") from None
    rows: dict[str, tuple[int, float | int]] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 2:
            raise LabelError(
                f"{path}, row {number}: expected 2 columns (file,label), got {len(cells)}: {row}"
            )
        name, raw = cells
        value = _number(raw)
        if value is None:
            if not rows and number == _first_row(text):  # a header such as file,label
                continue
            raise LabelError(
                f"{path}, row {number}: label {raw!r} of {name!r} is not an integer class or a number"
            )
        if not name:
            raise LabelError(f"{path}, row {number}: empty file name")
        if name in rows:
            raise LabelError(
                f"{path}, row {number}: {name!r} is labelled twice (first at row {rows[name][0]})"
            )
        rows[name] = (number, value)
    if not rows:
        raise LabelError(f"{path}: no labels (expected rows file,label)")
    return rows


def _first_row(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.strip().startswith("#"):
            return number
    return 0


def _whole_file(name: str) -> list[str]:
    """``name`` and, for one volume of a stack (``scans.npy[3]``, ``scans.npz:key[3]``), the file's name."""
    out = [name]
    if name.endswith("]") and "[" in name:
        out.append(name[: name.rindex("[")])
    if ".npz:" in out[-1]:
        out.append(out[-1].split(".npz:", 1)[0] + ".npz")
    return out


def _aliases(name: str) -> list[str]:
    """The names a CSV row may use for the scan ``prepare`` calls ``name``, most specific first."""
    out = _whole_file(name)
    for n in list(out):
        base = PurePosixPath(n).name
        suffix = suffix_of(Path(base))
        out += [base] + (
            [base[: -len(suffix)]] if suffix in IMAGE_SUFFIXES and len(base) > len(suffix) else []
        )
    return list(dict.fromkeys(out))


def _by_alias(sources: Sequence[str]) -> dict[str, list[str]]:
    by_alias: dict[str, list[str]] = {}
    for source in sources:
        for alias in _aliases(source):
            by_alias.setdefault(alias, []).append(source)
    return by_alias


def check_csv_against_sources(csv_path: str | os.PathLike[str], sources: Sequence[str]) -> None:
    """Before any scan is read: the CSV parses, and every row names one of the scans found (a row for one
    volume of a stack, ``scans.npy[3]``, names the file ``scans.npy``); otherwise a :class:`LabelError`
    naming the CSV and the row."""
    rows = read_labels_csv(csv_path)
    by_alias = _by_alias(sources)
    for name, (number, _) in rows.items():
        owners = next((by_alias[a] for a in _whole_file(name) if a in by_alias), [])
        if not owners:
            raise LabelError(
                f"{csv_path}, row {number}: {name!r} is not one of the {len(sources)} scans found"
            )
        if len(owners) > 1 and name not in sources:
            raise LabelError(
                f"{csv_path}, row {number}: {name!r} fits several scans ({', '.join(owners[:3])}); "
                "give the path that prepare reports"
            )


def match_labels(rows: Mapping[str, tuple[int, float | int]], names: Sequence[str]) -> dict[str, str]:
    """Which CSV row labels each item (``{item name: row name}``), the most specific row first."""
    chosen: dict[str, str] = {}
    for name in names:
        for alias in _aliases(name):
            if alias in rows:
                chosen[name] = alias
                break
    return chosen


def label_items(
    csv_path: str | os.PathLike[str], items: list[dict], kind: str = "auto"
) -> tuple[LabelSpec, str]:
    """Give every prepared item its ``label`` from the CSV (in place); returns the spec and the CSV's text.

    ``kind``: ``auto`` (integers: classes, else values), ``class`` (refuses a non-integer) or ``value``.
    A scan without a row is refused by name; rows for scans that were skipped as unreadable are fine.
    """
    if kind not in LABEL_KINDS:
        raise LabelError(f"label kind must be one of {', '.join(LABEL_KINDS)}, got {kind!r}")
    rows = read_labels_csv(csv_path)
    names = [it["source"] for it in items]
    chosen = match_labels(rows, names)
    missing = [n for n in names if n not in chosen]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LabelError(f"{csv_path}: no label for scan {missing[0]!r}{more}")
    values = [rows[chosen[n]][1] for n in names]
    integral = [isinstance(v, int) for v in values]
    if kind == "class" and not all(integral):
        bad = next(chosen[n] for n, i in zip(names, integral, strict=True) if not i)
        raise LabelError(
            f"{csv_path}, row {rows[bad][0]}: label {rows[bad][1]!r} of {bad!r} is not an integer class"
        )
    as_class = kind == "class" or (kind == "auto" and all(integral))
    for it, v in zip(items, values, strict=True):
        it["label"] = int(v) if as_class else float(v)
    spec = (
        LabelSpec("class", tuple(sorted({int(v) for v in values})))
        if as_class
        else LabelSpec("value", value_range=(float(min(values)), float(max(values))))
    )
    return spec, Path(csv_path).read_text(encoding="utf-8-sig")


def labels_block(spec: LabelSpec, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest's ``labels`` entry: the spec, where the CSV is kept, and per-class counts per split."""
    block: dict[str, Any] = spec.to_dict() | {"csv": LABELS_NAME}
    if spec.kind == "class":
        block["counts"] = {
            split: {
                str(c): sum(1 for it in items if it["split"] == split and it["label"] == c)
                for c in spec.classes
            }
            for split in ("train", "val")
        }
    return block
