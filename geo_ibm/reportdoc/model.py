"""The report as a document model: sections of paragraphs, tables and images, rendered to HTML and PDF alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ParagraphStyle = Literal["body", "lead", "note"]


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (no markup); ``style``: ``"body"``, ``"lead"`` (larger) or ``"note"`` (small, grey)."""

    text: str
    style: ParagraphStyle = "body"


@dataclass(frozen=True)
class Table:
    """A table of text cells.

    Attributes
    ----------
    columns
        Heading of each column.
    rows
        One list of cell texts per row, as long as ``columns``.
    caption
        Title line above the table.
    numeric
        Per column, whether it holds numbers (right-aligned); default: all but the first.
    bold_rows
        Indices of rows set in bold (totals).
    """

    columns: list[str]
    rows: list[list[str]]
    caption: str | None = None
    numeric: list[bool] | None = None
    bold_rows: tuple[int, ...] = ()

    def is_numeric(self, index: int) -> bool:
        """Whether column ``index`` is right-aligned."""
        if self.numeric is not None:
            return self.numeric[index]
        return index > 0


@dataclass(frozen=True)
class Image:
    """A PNG picture (a map or a chart) printed ``width_mm`` wide, with its caption below."""

    png: bytes
    caption: str
    width_mm: float = 170.0
    alt: str = ""


Block = Paragraph | Table | Image


@dataclass(frozen=True)
class Section:
    """A numbered heading and its blocks; ``level`` 1 (chapter, new PDF page) or 2."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 1


@dataclass(frozen=True)
class Document:
    """The whole report.

    Attributes
    ----------
    title, subtitle
        Title page lines.
    lang
        ``"en"`` or ``"fr"`` (HTML ``lang``, PDF metadata).
    footer
        Text of every page's footer (the area and quarter).
    contents_title, page_label
        "Contents" and "Page %(page)s" in ``lang``.
    intro
        Blocks on the title page, under the title (the summary).
    sections
        In reading order.
    """

    title: str
    subtitle: str
    lang: str
    footer: str
    contents_title: str
    page_label: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
