"""English -> Faroese phrase pairs from Debian's message catalogues (real translations, made by
people): `shared-mime-info` (file-type descriptions, GPL-2+) and `iso-codes` (country names,
ISO 3166-1, LGPL-2.1+). Each row keeps its package and licence.

The catalogues are read from /usr/share/locale/fo/LC_MESSAGES; where the packages are not
installed, their .deb files are fetched with `apt-get download` (no root needed) and unpacked
into a temporary folder. `rlsys extract-faroese --out FILE` writes the JSONL."""

from __future__ import annotations

import gettext
import json
import subprocess
import tempfile
from pathlib import Path

LOCALE = Path("/usr/share/locale/fo/LC_MESSAGES")
CATALOGUES = (  # (catalogue, Debian package, licence)
    ("shared-mime-info", "shared-mime-info", "GPL-2.0-or-later"),
    ("iso_3166-1", "iso-codes", "LGPL-2.1-or-later"),
)


def usable(source: str, target: str) -> bool:
    """One-line phrases without format codes, markup or mnemonics, actually translated."""
    return (bool(source.strip()) and bool(target.strip()) and source != target and "\n" not in source + target
            and not any(mark in source + target for mark in ("%", "<", "_", "\x04", "{")) and len(source) <= 80)


def read_catalogue(path: Path) -> list[tuple[str, str]]:
    with path.open("rb") as fh:
        catalogue = gettext.GNUTranslations(fh)._catalog
    return sorted((s, t) for s, t in catalogue.items() if isinstance(s, str) and isinstance(t, str) and usable(s, t))


def _unpacked_packages(packages: list[str], into: Path) -> Path:
    """Download `packages` as .deb files and unpack them under `into`; their fo catalogue folder."""
    try:
        subprocess.run(["apt-get", "download", *packages], cwd=into, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise FileNotFoundError(f"the Faroese catalogues are not installed and `apt-get download {' '.join(packages)}` "
                                f"failed ({detail.strip()[:200]}); install them: apt-get install "
                                f"{' '.join(packages)}") from None
    for deb in into.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into / "root")], check=True)
    return into / "root" / LOCALE.relative_to("/")


def faroese_pairs(locale: Path = LOCALE) -> list[dict]:
    rows, seen = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        missing = [pkg for cat, pkg, _ in CATALOGUES if not (locale / f"{cat}.mo").is_file()]
        fetched = _unpacked_packages(sorted(set(missing)), Path(tmp)) if missing else None
        for catalogue, package, licence in CATALOGUES:
            path = locale / f"{catalogue}.mo"
            if not path.is_file() and fetched is not None:
                path = fetched / f"{catalogue}.mo"
            for source, target in read_catalogue(path):
                if source in seen:
                    continue
                seen.add(source)
                rows.append({"source": source, "reference": target, "package": package, "catalogue": catalogue,
                             "licence": licence})
    return rows


def write_pairs(out: str | Path) -> dict:
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out or remove it")
    rows = faroese_pairs()
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.rename(out)
    by_package = {p: sum(r["package"] == p for r in rows) for _, p, _ in CATALOGUES}
    return {"out": str(out), "pairs": len(rows), "by_package": by_package}
