//! Charts as inline SVG, drawn on the server: stacked bars, one bar per label (a day, a run).

use std::fmt::Write;

use super::html::escape;

/// One series: its name and colour.
pub(super) struct Series {
    pub(super) name: &'static str,
    pub(super) colour: &'static str,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 30.0;

/// A stacked bar chart: `bars` are (label, one value per series). Each bar has a `<title>` with
/// its numbers, so hovering shows them; the legend names the series.
pub(super) fn stacked_bars(title: &str, unit: &str, series: &[Series], bars: &[(String, Vec<f64>)]) -> String {
    let top = bars.iter().map(|(_, values)| values.iter().sum::<f64>()).fold(0.0, f64::max);
    let scale = if top > 0.0 { (HEIGHT - BOTTOM - 10.0) / top } else { 0.0 };
    let slot = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         aria-label=\"{}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{WIDTH}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"2\" y=\"12\" font-size=\"10\">{}</text>",
        escape(title),
        escape(title),
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM,
        escape(&format!("{} {unit}", format_number(top)))
    );
    if bars.is_empty() {
        let _ = write!(svg, "<text x=\"{LEFT}\" y=\"{}\" font-size=\"12\">no data yet</text>", HEIGHT / 2.0);
    }
    for (i, (label, values)) in bars.iter().enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        let numbers: Vec<String> =
            series.iter().zip(values).map(|(s, v)| format!("{} {}", s.name, format_number(*v))).collect();
        let _ = write!(svg, "<g class=\"bar\"><title>{}: {}</title>", escape(label), escape(&numbers.join(", ")));
        for (s, value) in series.iter().zip(values) {
            let h = value * scale;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
                s.colour
            );
        }
        svg.push_str("</g>");
    }
    // The first and last labels under the axis: enough to read the time span.
    for (i, anchor) in [(0, "start"), (bars.len().saturating_sub(1), "end")] {
        if let Some((label, _)) = bars.get(i).filter(|_| bars.len() > 1 || i == 0) {
            let x = if anchor == "start" { LEFT } else { WIDTH };
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
                HEIGHT - BOTTOM + 14.0,
                escape(label)
            );
        }
    }
    let mut x = LEFT;
    for s in series {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">{}</text>",
            HEIGHT - 10.0,
            s.colour,
            x + 13.0,
            HEIGHT - 1.0,
            escape(s.name)
        );
        x += 90.0;
    }
    svg.push_str("</svg></figure>");
    svg
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_stack_and_labels_are_escaped() {
        let series = [Series { name: "joiners", colour: "#2a7" }, Series { name: "leavers", colour: "#c33" }];
        let svg = stacked_bars("per <day>", "persons", &series, &[("2026-03-01".into(), vec![2.0, 1.0])]);
        assert!(svg.contains("per &lt;day&gt;"), "{svg}");
        assert!(svg.contains("<title>2026-03-01: joiners 2, leavers 1</title>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2 + 2, "two stacked rects and two legend keys: {svg}");
        assert!(svg.contains("3 persons"), "the scale's top is the tallest stack: {svg}");
    }
}
