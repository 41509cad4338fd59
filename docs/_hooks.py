"""MkDocs hooks of the netaio site (mkdocs.yml: ``hooks:``).

- The API reference is generated at build time from the sources: one page per
  distribution found under ``packages/*/src``, holding the package and each of
  its public modules. A name is documented once, where it is defined; every
  module that re-exports it links there. A new distribution or module gets
  its page without editing anything here.
- Links that the repository's own Markdown makes to other files of the
  repository (docs/security.md to PROTOCOL.md, ...) are pointed at the
  site's pages instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SRC_DIRS = sorted(p for p in ROOT.glob("packages/*/src") if p.is_dir())

# Links in included Markdown that point outside docs/: where they go on the site.
_LINKS = {
    "../packages/netaio-core/PROTOCOL.md": "protocol.md",
    "packages/netaio-core/PROTOCOL.md": "protocol.md",
    "PROTOCOL.md": "protocol.md",
    "docs/security.md": "security.md",
    "docs/benchmarks.md": "benchmarks.md",
    "#uvloop": "guides/production.md#uvloop",
}
_LINK = re.compile(r"\]\(([^)#\s]+|#uvloop)(#[^)\s]*)?\)")


def _distributions() -> list[tuple[str, str]]:
    """(distribution, import package) for every package under packages/."""
    found = []
    for src in SRC_DIRS:
        for pkg in sorted(src.iterdir()):
            if (pkg / "__init__.py").is_file():
                found.append((src.parent.name, pkg.name))
    return found


def _public_modules(package: griffe.Module) -> list[griffe.Module]:
    modules = [package]
    for name, member in sorted(package.members.items()):
        if member.is_alias or not isinstance(member, griffe.Module):
            continue
        if name.startswith("_"):
            continue
        modules.extend(_public_modules(member) if member.is_package else [member])
    return modules


def _public_names(module: griffe.Module) -> list[str]:
    if module.exports is not None:
        return [str(name) for name in module.exports]
    return [
        name
        for name, member in module.members.items()
        if not name.startswith("_")
        and not member.is_alias
        and not isinstance(member, griffe.Module)
    ]


def _reference_pages() -> dict[str, str]:
    _DISTS.clear()
    loader = griffe.GriffeLoader(search_paths=[str(p) for p in SRC_DIRS], docstring_parser="google")
    dists = _distributions()
    packages = {pkg: loader.load(pkg) for _, pkg in dists}
    loader.resolve_aliases(implicit=False, external=True)

    # Where each object is rendered: its defining module, when that module is public.
    modules = {pkg: _public_modules(module) for pkg, module in packages.items()}
    rendered: set[str] = set()
    own: dict[str, list[str]] = {}
    for mods in modules.values():
        for module in mods:
            names = []
            for name in _public_names(module):
                member = module.members.get(name)
                if member is not None and not member.is_alias:
                    names.append(name)
                    rendered.add(f"{module.path}.{name}")
            own[module.path] = names

    pages = {}
    for dist, pkg in dists:
        lines = [
            f"# {pkg}",
            "",
            f"The `{dist}` distribution (`pip install {dist}`). Generated from the",
            "docstrings; every public name is documented once, in the module that",
            "defines it, and linked from the modules that re-export it.",
            "",
        ]
        for module in modules[pkg]:
            lines += [f"## `{module.path}`", ""]
            lines += [f"::: {module.path}", "    options:", "      show_root_heading: false"]
            names = own[module.path]
            if names:
                lines.append("      members:")
                lines += [f"        - {name}" for name in names]
            else:
                lines.append("      members: false")
            lines.append("")
            reexported = []
            for name in _public_names(module):
                member = module.members.get(name)
                if member is None or not member.is_alias:
                    continue
                try:
                    target = member.final_target.path
                except griffe.AliasResolutionError:
                    target = member.target_path
                if target in rendered:
                    reexported.append(f"[`{name}`][{target}]")
                else:  # defined somewhere private or external: render it here
                    rendered.add(target)
                    lines += [f"::: {target}", "    options:", "      heading_level: 3", ""]
            if reexported:
                lines += ["Re-exported here: " + ", ".join(reexported) + ".", ""]
        pages[f"reference/{pkg}.md"] = "\n".join(lines)
        _DISTS[f"reference/{pkg}.md"] = dist
    return pages


_PAGES: dict[str, str] = {}
_DISTS: dict[str, str] = {}  # reference page -> its distribution


def on_config(config: Any) -> Any:
    _PAGES.clear()
    _PAGES.update(_reference_pages())
    for entry in config["nav"]:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = ["reference/index.md", *sorted(_PAGES)]
    return config


def on_files(files: Files, config: Any) -> Files:
    for path, content in _PAGES.items():
        files.append(File.generated(config, path, content=content))
    return files


_SECTION = re.compile(r'^--8<-- "README\.md:([\w-]+)"$', re.M)


def _readme_section(match: re.Match[str]) -> str:
    """A section of the root README between its ``--8<-- [start:name]`` and
    ``[end:name]`` markers (included here, not by pymdownx.snippets, so that
    its links can be pointed at the site's pages below)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        rf"^<!-- --8<-- \[start:{match[1]}\] -->\n(.*?)^<!-- --8<-- \[end:{match[1]}\] -->",
        text,
        re.M | re.S,
    )
    if found is None:
        raise ValueError(f"README.md has no section {match[1]!r}")
    return found[1]


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    markdown = _SECTION.sub(_readme_section, markdown)
    if page.file.src_uri == "reference/index.md":
        listing = "\n".join(
            f"- [`{Path(path).stem}`]({Path(path).name}): the `{dist}` distribution."
            for path, dist in sorted(_DISTS.items())
        )
        markdown = re.sub(r"<!-- reference-pages:.*?-->", listing, markdown)

    def fix(match: re.Match[str]) -> str:
        target = _LINKS.get(match[1])
        if target is None:
            return match[0]
        depth = page.file.src_uri.count("/")
        return f"]({'../' * depth}{target}{match[2] or ''})"

    return _LINK.sub(fix, markdown)
