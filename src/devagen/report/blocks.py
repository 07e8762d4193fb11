"""The pieces a report page is made of (headings, paragraphs, tables, figures), rendered by render.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

MISSING = "—"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    name: str
    caption: str


Block = Union[Heading, Para, Table, Figure]
