"""The report as one self-contained HTML file: styles inline, pictures as ``data:`` URIs, nothing fetched."""
from __future__ import annotations

import base64
from html import escape

from geo_ibm.reportdoc.model import Block, Document, Image, Paragraph, Table

_CSS = """
body{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;color:#1d1d1d;max-width:190mm;margin:2em auto;padding:0 1em;
line-height:1.45;font-size:10.5pt}
h1{font-size:20pt;margin:0 0 .2em}
.subtitle{font-size:12pt;color:#444;margin:0 0 1.5em}
h2{font-size:14pt;border-bottom:2px solid #31688e;padding-bottom:.15em;margin-top:2em}
h3{font-size:11.5pt;margin-top:1.5em}
p.lead{font-size:11.5pt}
p.note{font-size:8.5pt;color:#555}
nav ol{padding-left:0;list-style:none}
nav li.l2{padding-left:1.6em}
nav li.l1{font-weight:bold;margin-top:.3em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:9pt}
caption{text-align:left;font-weight:bold;padding-bottom:.3em}
th,td{padding:.2em .6em;border-bottom:1px solid #d8d8d8;vertical-align:top}
th{background:#eef3f7;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:bold}
figure{margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}
figcaption{font-size:8.5pt;color:#444}
footer{margin-top:3em;font-size:8.5pt;color:#555;border-top:1px solid #ccc;padding-top:.5em}
@media print{h2{page-break-before:always}nav{page-break-after:always}}
"""


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f'<p class="{block.style}">{escape(block.text)}</p>'
    if isinstance(block, Table):
        head = "".join(f'<th class="num">{escape(c)}</th>' if block.is_numeric(i) else f"<th>{escape(c)}</th>"
                       for i, c in enumerate(block.columns))
        body = []
        for r, row in enumerate(block.rows):
            cells = "".join(f'<td class="num">{escape(v)}</td>' if block.is_numeric(i) else f"<td>{escape(v)}</td>"
                            for i, v in enumerate(row))
            body.append(f'<tr class="total">{cells}</tr>' if r in block.bold_rows else f"<tr>{cells}</tr>")
        caption = f"<caption>{escape(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.alt or block.caption)}" '
                f'style="width:{block.width_mm:.0f}mm"><figcaption>{escape(block.caption)}</figcaption></figure>')
    raise TypeError(f"not a report block: {type(block).__name__}")


def render_html(doc: Document) -> str:
    """``doc`` as one HTML5 page: a contents list linking to the numbered sections, every picture inlined.

    The page references no file and no address (no ``src``/``href`` outside ``data:`` URIs and
    in-page anchors), so it opens offline and can be mailed as one attachment.
    """
    subtitle = "<br>".join(escape(line) for line in doc.subtitle.splitlines())
    parts = [f"<h1>{escape(doc.title)}</h1>", f'<p class="subtitle">{subtitle}</p>']
    parts.extend(_block(b) for b in doc.intro)
    toc = []
    body = []
    chapter = 0
    sub = 0
    for index, section in enumerate(doc.sections):
        anchor = f"s{index + 1}"
        if section.level == 1:
            chapter += 1
            sub = 0
            number = f"{chapter}"
            body.append(f'<h2 id="{anchor}">{number}. {escape(section.title)}</h2>')
        else:
            sub += 1
            number = f"{chapter}.{sub}"
            body.append(f'<h3 id="{anchor}">{number} {escape(section.title)}</h3>')
        toc.append(f'<li class="l{section.level}"><a href="#{anchor}">{number} {escape(section.title)}</a></li>')
        body.extend(_block(b) for b in section.blocks)
    nav = f'<nav><h2>{escape(doc.contents_title)}</h2><ol>{"".join(toc)}</ol></nav>'
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(doc.lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(doc.title)} – {escape(doc.footer)}</title><style>{_CSS}</style></head><body>"
        + "".join(parts) + nav + "".join(body) + f"<footer>{escape(doc.footer)}</footer></body></html>\n"
    )
