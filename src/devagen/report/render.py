"""Report blocks as a self-contained HTML page (figures embedded as data URIs) and as Markdown."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Mapping, Sequence

from .blocks import Block, Heading, Para, Table

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans Devanagari", sans-serif;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
img.pixel { image-rendering: pixelated; }
figcaption, .missing { color: #666; font-size: 0.9em; }
.missing { font-style: italic; }
"""


MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


CHARTS = ("loss_curve", "per_class")  # smooth charts; the rest are pixel grids shown crisp


def _missing_figure(name: str) -> str:
    return f"figure {name} not available (the stage that draws it has not run)"


def data_uri(path: Path) -> str:
    """The file as a base64 data URI (image/png, image/gif or image/jpeg by suffix)."""
    mime = MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_block(block: Block, figures: Mapping[str, Path]) -> str:
    e = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level}>{e(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{e(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    path = figures.get(block.name)
    if path is None or not Path(path).is_file():
        return f'<p class="missing">{e(_missing_figure(block.name))}</p>'
    css = "" if block.name in CHARTS else ' class="pixel"'
    return (f'<figure><img{css} src="{data_uri(Path(path))}" alt="{e(block.name)}">'
            f"<figcaption>{e(block.caption)}</figcaption></figure>")


def to_html(blocks: Sequence[Block], figures: Mapping[str, Path], title: str) -> str:
    """A self-contained HTML page: inline CSS, images as data URIs, no external references."""
    body = "\n".join(_html_block(b, figures) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, figures: Mapping[str, Path], report_dir: Path) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Table):
        lines = [block.header, ["---"] * len(block.header), *block.rows]
        return "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in lines)
    path = figures.get(block.name)
    if path is None or not Path(path).is_file():
        return f"*({_missing_figure(block.name)})*"
    link = Path(os.path.relpath(Path(path).resolve(), report_dir.resolve())).as_posix()
    return f"![{block.name}]({link})\n\n*{block.caption}*"


def to_markdown(blocks: Sequence[Block], figures: Mapping[str, Path], report_dir: Path) -> str:
    """The same blocks as Markdown; images linked by path relative to `report_dir`."""
    return "\n\n".join(_md_block(b, figures, report_dir) for b in blocks) + "\n"
