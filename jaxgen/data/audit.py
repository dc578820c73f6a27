"""`jaxgen audit-data`: what is wrong with a dataset, found before training on it.

  jaxgen audit-data --folder ROOT [--out audit.json]
  jaxgen audit-data --config experiments/X.py [--config.data.KEY=V ...] [--out audit.json]

Per split, by record name (ROOT-relative paths for folders, `split[index]` for TFDS, the
names `prepare-data` and `data.exclude` use):
  - corrupt or undecodable files;
  - exact duplicates (the same decoded pixels) within a split and across splits (leakage
    of test images into training);
  - near-duplicates: a 64-bit difference hash (dHash) within `near_bits` bits, found
    through 4 bands of 16 bits (two hashes that close share a band exactly);
  - images whose size or mode differs from the majority (16-bit, RGBA, palette, CMYK…),
    with what the input pipeline does to each;
  - class counts and their imbalance;
  - "irrelevant" candidates: images far from their class, scored by their distance to the
    class's (trimmed) mean in a 16x16 grey thumbnail space over the class's median
    distance (above 2 by default). Listed, never removed unless asked
    (`exclude_irrelevant`).
Writes the full report as JSON and an exclusion list (one name per line: corrupt files,
the later copy of each duplicate, a training image that leaks a test image) that
`--config.data.exclude=FILE` applies when training.
"""

import collections
import hashlib
import json
import os

import numpy as np

from jaxgen.errors import UserError

THUMB = 16
# What the input pipeline does to images of each mode (PIL's names) that the majority lacks.
CONVERSIONS = {
    "RGBA": "alpha dropped", "LA": "alpha dropped", "P": "palette expanded",
    "PA": "palette expanded, alpha dropped", "CMYK": "converted to RGB",
    "I;16": "16-bit scaled to 8", "I;16B": "16-bit scaled to 8", "I;16L": "16-bit scaled to 8",
    "I": "32-bit scaled to 8", "1": "1-bit expanded to 8", "L": "grey (repeated to RGB "
    "when the model takes 3 channels)", "RGB": "RGB (averaged to grey when the model takes 1)",
}


def audit(splits: dict, label_names: list[str], near_bits: int = 4,
          irrelevant_score: float = 2.0, max_listed: int = 50) -> dict:
  """The report for {split: iterable of (name, path or uint8 array, label)}."""
  if not 0 <= near_bits <= 16:
    raise UserError(f"--near-bits {near_bits}: expected 0..16 differing bits of 64")
  records, corrupt = [], collections.defaultdict(list)
  for split, items in splits.items():
    for name, source, label in items:
      try:
        records.append(_inspect(split, name, source, label))
      except Exception as error:  # PIL raises many types for a bad file; each is reported.
        corrupt[split].append({"name": name, "error": f"{type(error).__name__}: {error}"})
  if not records:
    raise UserError("no image could be decoded: nothing to audit")
  report = {"num_images": {s: sum(r["split"] == s for r in records) for s in splits},
            "corrupt": dict(corrupt)}
  report["exact_duplicates"] = _exact_duplicates(records)
  report["near_duplicates"] = _near_duplicates(records, near_bits, max_listed)
  report["odd_formats"] = _odd_formats(records)
  report["classes"] = _classes(records, label_names)
  report["irrelevant_candidates"] = _irrelevant(records, label_names, irrelevant_score,
                                                max_listed)
  report["settings"] = dict(near_bits=near_bits, irrelevant_score=irrelevant_score,
                            thumbnail=THUMB)
  return report


def exclusions(report: dict, exclude_irrelevant: bool = False) -> list[str]:
  """Names to leave out of training: corrupt files, every copy of an exact duplicate but
  the first (a copy in another split than the first's is left out of its own split, so a
  test image also in train is dropped from train), and optionally the irrelevant ones."""
  names = [c["name"] for split in report["corrupt"].values() for c in split]
  for group in report["exact_duplicates"]:
    keep = next((n for n in group["names"] if not _is_train(n)), group["names"][0])
    names += [n for n in group["names"] if n != keep]
  if exclude_irrelevant:
    names += [c["name"] for c in report["irrelevant_candidates"]]
  return sorted(set(names))


def _is_train(name: str) -> bool:
  return name.startswith("train")


def _inspect(split, name, source, label) -> dict:
  from PIL import Image
  from jaxgen.data import prepare
  image = prepare.open_image(source)
  mode, size = image.mode, image.size
  grey = prepare.to_8_bit(image).convert("L")
  pixels = np.asarray(image.convert("RGB") if mode not in ("L", "1") and not
                      mode.startswith("I") else grey)
  dhash = np.asarray(grey.resize((9, 8), Image.BILINEAR), np.int16)
  bits = (dhash[:, 1:] > dhash[:, :-1]).flatten()
  thumb = np.asarray(grey.resize((THUMB, THUMB), Image.BILINEAR), np.float32) / 255.0
  return dict(split=split, name=name, label=int(label), mode=mode, size=size,
              sha=hashlib.sha256(pixels.tobytes() + repr(pixels.shape).encode()).hexdigest(),
              dhash=int(np.packbits(bits).view(">u8")[0]), thumb=thumb.flatten())


def _exact_duplicates(records) -> list[dict]:
  groups = collections.defaultdict(list)
  for r in records:
    groups[r["sha"]].append(r)
  return [{"names": [r["name"] for r in g], "splits": sorted({r["split"] for r in g}),
           "across_splits": len({r["split"] for r in g}) > 1}
          for g in groups.values() if len(g) > 1]


def _near_duplicates(records, near_bits, max_listed) -> dict:
  """Pairs with dHashes within `near_bits` bits that are not exact duplicates."""
  bands = collections.defaultdict(list)
  for i, r in enumerate(records):
    for band in range(4):
      bands[band, (r["dhash"] >> (16 * band)) & 0xFFFF].append(i)
  pairs = set()
  for members in bands.values():
    for a in range(len(members)):
      for b in range(a + 1, len(members)):
        i, j = members[a], members[b]
        if (records[i]["sha"] != records[j]["sha"]
            and bin(records[i]["dhash"] ^ records[j]["dhash"]).count("1") <= near_bits):
          pairs.add((i, j))
  listed = sorted(pairs)[:max_listed]
  return {"count": len(pairs),
          "pairs": [{"names": [records[i]["name"], records[j]["name"]],
                     "bits": bin(records[i]["dhash"] ^ records[j]["dhash"]).count("1")}
                    for i, j in listed]}


def _odd_formats(records) -> dict:
  modes = collections.Counter(r["mode"] for r in records)
  sizes = collections.Counter(r["size"] for r in records)
  mode, size = modes.most_common(1)[0][0], sizes.most_common(1)[0][0]
  odd = [{"name": r["name"], "mode": r["mode"], "size": list(r["size"]),
          "pipeline": "; ".join(
              ([CONVERSIONS.get(r["mode"], f"mode {r['mode']} converted by PIL")]
               if r["mode"] != mode else []) +
              ([f"resized from {r['size'][0]}x{r['size'][1]} (data.image_size)"]
               if r["size"] != size else []))}
         for r in records if r["mode"] != mode or r["size"] != size]
  return {"majority": {"mode": mode, "size": list(size)}, "modes": dict(modes),
          "count": len(odd), "images": odd}


def _classes(records, label_names) -> dict:
  out = {}
  for split in sorted({r["split"] for r in records}):
    counts = collections.Counter(r["label"] for r in records if r["split"] == split)
    named = {(label_names[k] if k < len(label_names) else str(k)): v
             for k, v in sorted(counts.items())}
    out[split] = {"counts": named, "imbalance": max(counts.values()) / min(counts.values())}
  return out


def _irrelevant(records, label_names, threshold, max_listed) -> list[dict]:
  """Images whose thumbnail is more than `threshold` times their class's median distance
  from the class's centre (classes of the same split), farthest first."""
  found = []
  for split in sorted({r["split"] for r in records}):
    for label in sorted({r["label"] for r in records if r["split"] == split}):
      members = [r for r in records if r["split"] == split and r["label"] == label]
      if len(members) < 5:
        continue
      thumbs = np.stack([r["thumb"] for r in members])
      # The class's centre: the mean, taken again without the images far from the first
      # one, so that the off-class images do not drag it towards themselves.
      distance = np.linalg.norm(thumbs - thumbs.mean(0), axis=1)
      near = distance <= max(threshold, 1.0) * np.median(distance)
      distance = np.linalg.norm(thumbs - thumbs[near].mean(0), axis=1)
      scale = max(float(np.median(distance)), 1e-6)
      for r, d in zip(members, distance):
        if d / scale > threshold:
          found.append({"name": r["name"], "label": label_names[label] if label < len(
              label_names) else label, "score": round(float(d / scale), 2)})
  return sorted(found, key=lambda c: -c["score"])[:max_listed]


def summary(report: dict) -> str:
  leaks = sum(g["across_splits"] for g in report["exact_duplicates"])
  lines = [f"images: {report['num_images']}",
           f"corrupt: {sum(len(v) for v in report['corrupt'].values())}",
           f"exact duplicate groups: {len(report['exact_duplicates'])} ({leaks} across splits)",
           f"near-duplicate pairs: {report['near_duplicates']['count']}",
           f"odd formats: {report['odd_formats']['count']} (majority "
           f"{report['odd_formats']['majority']})",
           "class imbalance (max/min): " + ", ".join(
               f"{s} {c['imbalance']:.2f}" for s, c in report["classes"].items()),
           f"irrelevant candidates: {len(report['irrelevant_candidates'])}"]
  return "\n".join(lines)


def main_audit(folder: str | None, data, out: str, exclude_out: str | None,
               near_bits: int, exclude_irrelevant: bool) -> dict:
  """`jaxgen audit-data`: audits a folder or config.data's dataset, writes OUT (and the
  exclusion list, default OUT's name with .exclude.txt), returns the report."""
  from jaxgen.data import prepare
  if folder is not None:
    splits, label_names = prepare.folder_splits(folder)
    splits = {s: items for s, (_, items) in splits.items()}
  elif data.name == "folder":
    splits, label_names = prepare.folder_splits(data.folder)
    splits = {s: items for s, (_, items) in splits.items()}
  elif data.name == "prepared":
    raise UserError("audit-data reads the source a prepared dataset was made from: pass "
                    "--folder ROOT or a config with its TFDS name (prepare-data already "
                    "lists the corrupt files it skipped in manifest.json)")
  else:
    splits, label_names = prepare.tfds_splits(data.name, data.data_dir)
    splits = {s: items for s, (_, items) in splits.items()}
  report = audit(splits, label_names, near_bits=near_bits)
  excluded = exclusions(report, exclude_irrelevant)
  exclude_out = exclude_out or os.path.splitext(out)[0] + ".exclude.txt"
  report["exclusion_list"] = {"file": exclude_out, "count": len(excluded)}
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w") as f:
    json.dump(report, f, indent=1)
  with open(exclude_out, "w") as f:
    f.writelines(name + "\n" for name in excluded)
  return report
