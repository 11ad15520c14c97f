"""The report as PDF with ReportLab's platypus: real text in embedded DejaVu fonts, a contents page, page numbers."""
from __future__ import annotations

import io
import threading
from html import escape
from pathlib import Path
from typing import Any

from geo_ibm.reportdoc.model import Block, Document, Image, Paragraph, Table

_FONT_FILES = {
    "DejaVuSans": "DejaVuSans.ttf",
    "DejaVuSans-Bold": "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique": "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique": "DejaVuSans-BoldOblique.ttf",
}
_fonts_lock = threading.Lock()
_fonts_ready = False


def _register_fonts() -> None:
    """Register matplotlib's bundled DejaVu fonts with ReportLab once, so no system font is needed."""
    global _fonts_ready
    with _fonts_lock:
        if _fonts_ready:
            return
        import matplotlib
        from reportlab.lib.fonts import addMapping
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.ttfonts import TTFont

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        for name, file in _FONT_FILES.items():
            pdfmetrics.registerFont(TTFont(name, str(folder / file)))
        addMapping("DejaVuSans", 0, 0, "DejaVuSans")
        addMapping("DejaVuSans", 1, 0, "DejaVuSans-Bold")
        addMapping("DejaVuSans", 0, 1, "DejaVuSans-Oblique")
        addMapping("DejaVuSans", 1, 1, "DejaVuSans-BoldOblique")
        _fonts_ready = True


def _styles() -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName="DejaVuSans", fontSize=9.5, leading=13, spaceAfter=5)
    return {
        "body": base,
        "lead": ParagraphStyle("lead", parent=base, fontSize=11, leading=15, spaceAfter=8),
        "note": ParagraphStyle("note", parent=base, fontSize=7.5, leading=10, textColor=colors.HexColor("#555555")),
        "title": ParagraphStyle("title", parent=base, fontName="DejaVuSans-Bold", fontSize=22, leading=27, spaceAfter=6),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=12.5, leading=16, spaceAfter=18,
                                   textColor=colors.HexColor("#444444")),
        "h1": ParagraphStyle("h1", parent=base, fontName="DejaVuSans-Bold", fontSize=15, leading=19, spaceBefore=4,
                             spaceAfter=8, keepWithNext=1, textColor=colors.HexColor("#1f3b57")),
        "h2": ParagraphStyle("h2", parent=base, fontName="DejaVuSans-Bold", fontSize=11.5, leading=15, spaceBefore=10,
                             spaceAfter=5, keepWithNext=1, textColor=colors.HexColor("#1f3b57")),
        "caption": ParagraphStyle("caption", parent=base, fontSize=7.5, leading=10, textColor=colors.HexColor("#444444"),
                                  spaceAfter=10),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10, spaceAfter=0),
        "cell_num": ParagraphStyle("cell_num", parent=base, fontSize=8, leading=10, spaceAfter=0, alignment=2),
        "cell_head": ParagraphStyle("cell_head", parent=base, fontName="DejaVuSans-Bold", fontSize=8, leading=10,
                                    spaceAfter=0),
        "cell_head_num": ParagraphStyle("cell_head_num", parent=base, fontName="DejaVuSans-Bold", fontSize=8, leading=10,
                                        spaceAfter=0, alignment=2),
        "toc1": ParagraphStyle("toc1", parent=base, fontName="DejaVuSans-Bold", fontSize=10, leading=15, leftIndent=0),
        "toc2": ParagraphStyle("toc2", parent=base, fontSize=9, leading=12, leftIndent=14),
    }


def _text(value: str) -> str:
    # ReportLab's paragraphs read a small markup language: every user text is escaped.
    return escape(value, quote=False).replace("\n", "<br/>")


def _column_widths(block: Table, width: float) -> list[float]:
    """Column widths in proportion to each column's longest cell (headings wrap at words, so their longest word)."""
    weights = []
    for i, heading in enumerate(block.columns):
        body = max((len(row[i]) for row in block.rows), default=0)
        # a bold heading wraps at its words only: its longest word, bold being wider, sets a floor
        head = max((len(w) for w in heading.split()), default=1) * 1.25
        weights.append(min(40.0, max(body, head)) + 2)
    total = float(sum(weights))
    return [width * w / total for w in weights]


def _flowables(block: Block, styles: dict[str, Any], width: float, height: float) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image as RlImage
    from reportlab.platypus import KeepTogether, Spacer, TableStyle
    from reportlab.platypus import Paragraph as RlParagraph
    from reportlab.platypus import Table as RlTable

    if isinstance(block, Paragraph):
        return [RlParagraph(_text(block.text), styles[block.style])]
    if isinstance(block, Table):
        head = [RlParagraph(_text(c), styles["cell_head_num" if block.is_numeric(i) else "cell_head"])
                for i, c in enumerate(block.columns)]
        rows = [head]
        for r, row in enumerate(block.rows):
            cells = []
            for i, value in enumerate(row):
                text = _text(value)
                if r in block.bold_rows:
                    text = f"<b>{text}</b>"
                cells.append(RlParagraph(text, styles["cell_num" if block.is_numeric(i) else "cell"]))
            rows.append(cells)
        widths = _column_widths(block, width)
        table = RlTable(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
        table.setStyle(TableStyle([
            ("FONTNAME", (0, 0), (-1, -1), "DejaVuSans"),  # the default (Helvetica) is set on each cell otherwise
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef3f7")),
            ("LINEBELOW", (0, 0), (-1, -1), 0.4, colors.HexColor("#d0d0d0")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]))
        out: list[Any] = []
        if block.caption:
            out.append(RlParagraph(_text(block.caption), styles["cell_head"]))
            out.append(Spacer(1, 3))
        out.extend([table, Spacer(1, 10)])
        return [KeepTogether(out)] if len(block.rows) <= 25 else out
    if isinstance(block, Image):
        from reportlab.lib.units import mm

        reader = ImageReader(io.BytesIO(block.png))
        px_w, px_h = reader.getSize()
        w = min(width, block.width_mm * mm)
        h = w * px_h / px_w
        if h > 0.86 * height:
            h = 0.86 * height
            w = h * px_w / px_h
        picture = RlImage(io.BytesIO(block.png), width=w, height=h)
        picture.hAlign = "LEFT"
        return [KeepTogether([picture, RlParagraph(_text(block.caption), styles["caption"])])]
    raise TypeError(f"not a report block: {type(block).__name__}")


def render_pdf(doc: Document) -> bytes:
    """``doc`` as A4 PDF bytes: title page, contents page (with page numbers), one chapter per level-1 section.

    Text is set in DejaVu Sans from matplotlib's bundled fonts, embedded as TrueType subsets, so
    it is selectable and searchable; every page but the first carries the footer and its
    number. The file carries no creation date (the same document gives the same bytes).
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import BaseDocTemplate, Frame, PageBreak, PageTemplate, Spacer, TableStyle
    from reportlab.platypus import Paragraph as RlParagraph
    from reportlab.platypus.tableofcontents import TableOfContents

    _register_fonts()
    styles = _styles()
    page_w, page_h = A4
    margin = 18 * mm
    frame_w, frame_h = page_w - 2 * margin, page_h - 2 * margin - 8 * mm

    def footer(canvas: Any, template: Any) -> None:
        canvas.saveState()
        canvas.setFont("DejaVuSans", 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.setStrokeColor(colors.HexColor("#bbbbbb"))
        canvas.line(margin, 13 * mm, page_w - margin, 13 * mm)
        canvas.drawString(margin, 9 * mm, doc.footer)
        canvas.drawRightString(page_w - margin, 9 * mm, doc.page_label % {"page": template.page})
        canvas.restoreState()

    class _Template(BaseDocTemplate):
        def afterFlowable(self, flowable: Any) -> None:
            level = getattr(flowable, "_toc_level", None)
            if level is None:
                return
            key = f"h{id(flowable)}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(flowable.getPlainText(), key, level=level - 1)
            self.notify("TOCEntry", (level - 1, flowable.getPlainText(), self.page, key))

    buffer = io.BytesIO()
    # Older ReportLab releases refuse options they do not know: the document language and the
    # canvas's initial font (else Helvetica is listed, unused) only where supported.
    optional = {"lang": doc.lang, "initialFontName": "DejaVuSans"}
    supported = {k: v for k, v in optional.items() if k in BaseDocTemplate._initArgs}
    template = _Template(buffer, pagesize=A4, leftMargin=margin, rightMargin=margin, topMargin=margin,
                         bottomMargin=margin + 8 * mm, title=f"{doc.title} – {doc.footer}", author="geo_ibm",
                         subject=doc.subtitle, invariant=True, creator="geo_ibm", producer="geo_ibm (ReportLab)",
                         **supported)
    frame = Frame(margin, margin + 8 * mm, frame_w, frame_h, id="body", leftPadding=0, rightPadding=0)
    template.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=footer)])

    story: list[Any] = [Spacer(1, 30 * mm), RlParagraph(_text(doc.title), styles["title"]),
                        RlParagraph(_text(doc.subtitle), styles["subtitle"])]
    for block in doc.intro:
        story.extend(_flowables(block, styles, frame_w, frame_h))
    toc = TableOfContents()
    toc.levelStyles = [styles["toc1"], styles["toc2"]]
    toc.dotsMinLevel = 0
    toc.tableStyle = TableStyle([("FONTNAME", (0, 0), (-1, -1), "DejaVuSans"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)])
    story.extend([PageBreak(), RlParagraph(_text(doc.contents_title), styles["h1"]), toc])
    chapter = 0
    sub = 0
    for section in doc.sections:
        if section.level == 1:
            chapter += 1
            sub = 0
            heading = RlParagraph(_text(f"{chapter}. {section.title}"), styles["h1"])
            story.append(PageBreak())
        else:
            sub += 1
            heading = RlParagraph(_text(f"{chapter}.{sub} {section.title}"), styles["h2"])
        heading._toc_level = min(2, section.level)  # type: ignore[attr-defined]
        story.append(heading)
        for block in section.blocks:
            story.extend(_flowables(block, styles, frame_w, frame_h))
    template.multiBuild(story)
    return buffer.getvalue()
