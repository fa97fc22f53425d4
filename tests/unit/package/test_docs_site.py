"""The documentation site (`mkdocs.yml`, `docs/`) builds in strict mode with the venv's MkDocs:
every page of the nav becomes a page of the site, the changelog page includes CHANGELOG.md,
and a broken link, a bad anchor or a page left out of the nav fails the build, naming it.
Each build takes about a second and needs no network (no font download, no plugins that
fetch)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ...conftest import REPO

# The sections a reader finds in the nav, in order.
SECTIONS = ["Home", "Getting started", "Concepts", "Guides", "Evaluation", "Operations", "Performance",
            "Troubleshooting", "Results", "Reference", "Limits", "Tests", "Changelog"]
# Pages other people write into the site at these paths: they must stay in the nav.
FIXED_PAGES = ["results.md", "reference/configuration.md", "limits.md", "tests.md", "changelog.md"]


def _nav() -> list:
    return yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]


def _pages(entries) -> list[str]:
    """Every Markdown file the nav names, depth first."""
    out = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        out += _pages(value) if isinstance(value, list) else [value]
    return out


def _built(page: str) -> str:
    """Where MkDocs (directory URLs) writes `page`: `a/b.md` -> `a/b/index.html`, `a/index.md` -> `a/index.html`."""
    path = Path(page).with_suffix("")
    return str((path.parent if path.name == "index" else path) / "index.html")


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its end of life
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _build(REPO, out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_nav_has_every_section_and_the_pages_written_elsewhere():
    nav = _nav()
    assert [next(iter(e)) for e in nav] == SECTIONS
    pages = _pages(nav)
    assert set(FIXED_PAGES) <= set(pages)
    assert len(pages) == len(set(pages)), "a page is in the nav twice"
    for page in pages:
        assert (REPO / "docs" / page).is_file(), f"the nav names docs/{page}, which does not exist"


def test_strict_build_writes_every_page_of_the_nav(site):
    for page in _pages(_nav()):
        built = site / _built(page)
        assert built.is_file(), f"{page} was not built ({built} is missing)"
        assert "<h1" in built.read_text(encoding="utf-8"), f"{built} has no title"
    assert (site / "search" / "search_index.json").is_file()


def test_changelog_page_is_the_changelog(site):
    first_entry = next(line for line in (REPO / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    html = (site / _built("changelog.md")).read_text(encoding="utf-8")
    assert first_entry.removeprefix("## ") in html
    assert "--8&lt;--" not in html and "--8<--" not in html


@pytest.mark.parametrize("text, named", [
    ("See [the missing page](no-such-page.md).", "no-such-page.md"),
    ("See [a bad anchor](index.md#no-such-anchor).", "no-such-anchor"),
    ("See [outside the docs](../../no-such-file.md).", "no-such-file.md"),
], ids=["missing-file", "bad-anchor", "outside-docs"])
def test_strict_build_fails_on_a_broken_link(tmp_path, text, named):
    copy = _copy_site(tmp_path)
    (copy / "docs" / "broken.md").write_text(f"# Broken\n\n{text}\n")
    config = yaml.safe_load((copy / "mkdocs.yml").read_text())
    config["nav"].append({"Broken": "broken.md"})
    (copy / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = _build(copy, tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "broken.md" in output and named in output, output


def test_strict_build_fails_on_a_page_left_out_of_the_nav(tmp_path):
    copy = _copy_site(tmp_path)
    (copy / "docs" / "orphan.md").write_text("# Orphan\n")
    done = _build(copy, tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "orphan.md" in output, output


def _copy_site(tmp_path: Path) -> Path:
    """mkdocs.yml, docs/ and the CHANGELOG.md the changelog page includes, in a folder of their own."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copy(REPO / "CHANGELOG.md", copy / "CHANGELOG.md")
    return copy
