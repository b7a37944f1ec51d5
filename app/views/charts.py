"""Small charts as server-rendered SVG: no script, no CDN, readable without colour (values are printed)."""

from dataclasses import dataclass

from markupsafe import Markup, escape

COLOURS = {
    "success": "#28a745",
    "danger": "#dc3545",
    "info": "#17a2b8",
    "secondary": "#6c757d",
    "warning": "#ffc107",
    "primary": "#007bff",
    "light": "#adb5bd",
}


def fill(colour: str) -> str:
    return COLOURS.get(colour, COLOURS["primary"])


@dataclass
class Bar:
    label: str
    value: float
    colour: str = "primary"  # a key of COLOURS


def hbars(bars: list[Bar], title: str, width: int = 360, row: int = 22) -> Markup:
    """Horizontal bars, one per row, each with its label and value."""
    label_width, value_width = 110, 60
    top = max((bar.value for bar in bars), default=0) or 1
    span = width - label_width - value_width
    height = row * len(bars) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
    ]
    for i, bar in enumerate(bars):
        y = i * row + 2
        length = max(round(span * bar.value / top), 1 if bar.value else 0)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + row * 0.65:.1f}" text-anchor="end" font-size="12">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{length}" height="{row - 8}" '
            f'fill="{fill(bar.colour)}"><title>{escape(bar.label)}: {bar.value:g}</title></rect>'
            f'<text x="{label_width + length + 4}" y="{y + row * 0.65:.1f}" font-size="12">{bar.value:g}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text in it went through escape()


def columns(days: list[str], series: list[tuple[str, str, list[float]]], title: str, height: int = 120) -> Markup:
    """Stacked daily columns: ``series`` is (name, colour, one value per day); a legend under the chart."""
    width_per_day, left, bottom = 22, 30, 34
    width = left + width_per_day * len(days) + 10
    totals = [sum(values[i] for _, _, values in series) for i in range(len(days))]
    top = max(totals, default=0) or 1
    plot = height - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="{left - 4}" y="10" text-anchor="end" font-size="10">{top:g}</text>',
        f'<text x="{left - 4}" y="{plot}" text-anchor="end" font-size="10">0</text>',
        f'<line x1="{left}" y1="{plot}" x2="{width - 5}" y2="{plot}" stroke="#999" stroke-width="1"/>',
    ]
    for i, day in enumerate(days):
        x = left + i * width_per_day + 3
        y = plot
        for name, colour, values in series:
            value = values[i]
            if not value:
                continue
            h = max(plot * value / top, 1)
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{width_per_day - 6}" height="{h:.1f}" '
                f'fill="{fill(colour)}"><title>{escape(day)} {escape(name)}: {value:g}</title></rect>'
            )
        if i % 2 == 0 or len(days) <= 10:
            parts.append(
                f'<text x="{x + (width_per_day - 6) / 2:.1f}" y="{plot + 12}" text-anchor="middle" font-size="9">'
                f"{escape(day[-2:])}</text>"
            )
    legend_x = left
    for name, colour, _ in series:
        parts.append(
            f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{fill(colour)}"/>'
            f'<text x="{legend_x + 14}" y="{height - 3}" font-size="11">{escape(name)}</text>'
        )
        legend_x += 14 + 8 * len(name) + 12
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text in it went through escape()
