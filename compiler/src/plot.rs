//! SVG plots, written by hand so that they need nothing but a browser to
//! open: a bar chart of accuracy per language with its 95% interval and a
//! heat map of the language-pair matrix (evaluation), and curves against
//! optimizer steps (training).

use std::fmt::Write;

use crate::evaluate::{LanguageRow, Matrix};

/// A new SVG document of `width` x `height` on white, `font_size` the default.
fn document(width: f64, height: f64, font_size: u32) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"{font_size}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Bars of accuracy (0 to 100%) with interval whiskers and a dashed line at
/// `reference` (chance, say) when given.
pub fn accuracy_bars(title: &str, rows: &[LanguageRow], reference: Option<f64>) -> String {
    let (left, top, plot_h, bar_w, gap) = (50.0, 40.0, 260.0, 36.0, 14.0);
    let width = left + rows.len() as f64 * (bar_w + gap) + 30.0;
    let height = top + plot_h + 50.0;
    let y = |v: f64| top + plot_h * (1.0 - v);
    let mut svg = document(width, height, 12);
    let s = &mut svg;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    for tick in 0..=10 {
        let v = tick as f64 / 10.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - 20.0,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0,
            tick * 10
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let x = left + gap / 2.0 + i as f64 * (bar_w + gap);
        let fill = if row.language == "en" {
            "#4a7ab5"
        } else {
            "#7fb07f"
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="{bar_w}" height="{:.1}" fill="{fill}"><title>{}: {:.1}% ({} pairs)</title></rect>"#,
            y(row.accuracy),
            plot_h * row.accuracy,
            escape(&row.language),
            100.0 * row.accuracy,
            row.pairs
        );
        let mid = x + bar_w / 2.0;
        let (lo, hi) = (y(row.interval.0), y(row.interval.1));
        let _ = writeln!(
            s,
            r#"<path d="M{mid:.1},{lo:.1}V{hi:.1}M{:.1},{lo:.1}H{:.1}M{:.1},{hi:.1}H{:.1}" stroke="black" fill="none"/>"#,
            mid - 6.0,
            mid + 6.0,
            mid - 6.0,
            mid + 6.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{mid:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{mid:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.1}</text>"#,
            top + plot_h + 16.0,
            escape(&row.language),
            top + plot_h + 30.0,
            100.0 * row.accuracy
        );
    }
    if let Some(r) = reference {
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#c33" stroke-dasharray="4 3"/>"##,
            width - 20.0,
            y(r),
            y(r)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">accuracy (%)</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// A heat map of values in [0, 1] (or missing), rows labelled by the first
/// language and columns by the second; colour from `low` to 1.
pub fn matrix_heat_map(title: &str, matrix: &Matrix, low: f64) -> String {
    let n = matrix.languages.len();
    let (left, top, cell) = (50.0, 50.0, 40.0);
    let width = left + n as f64 * cell + 20.0;
    let height = top + n as f64 * cell + 40.0;
    let mut svg = document(width, height, 11);
    let s = &mut svg;
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="13">{}</text>"#,
        escape(title)
    );
    for (i, lang) in matrix.languages.iter().enumerate() {
        let c = left + i as f64 * cell + cell / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{c:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            top - 6.0,
            escape(lang),
            left - 6.0,
            top + i as f64 * cell + cell / 2.0 + 4.0,
            escape(lang)
        );
    }
    for (a, row) in matrix.accuracy.iter().enumerate() {
        for (b, value) in row.iter().enumerate() {
            let (x, y) = (left + b as f64 * cell, top + a as f64 * cell);
            let Some(v) = value else {
                let _ = writeln!(
                    s,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{cell}" height="{cell}" fill="#eee"/>"##
                );
                continue;
            };
            let t = ((v - low) / (1.0 - low).max(1e-9)).clamp(0.0, 1.0);
            // White (low) to dark blue (high).
            let channel = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
            let (r, g, bl) = (
                channel(255.0, 33.0),
                channel(255.0, 84.0),
                channel(255.0, 150.0),
            );
            let text = if t > 0.55 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{cell}" height="{cell}" fill="rgb({r},{g},{bl})"><title>{} - {}: {:.1}%</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{text}">{:.0}</text>"#,
                escape(&matrix.languages[a]),
                escape(&matrix.languages[b]),
                100.0 * v,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                100.0 * v
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{:.1}">rows: sentence 1; columns: sentence 2; colour from {:.0}% to 100%</text>"#,
        top + n as f64 * cell + 24.0,
        100.0 * low
    );
    svg.push_str("</svg>\n");
    svg
}

/// One curve of [`curves`]: (x, y) points, a legend label and a colour.
pub struct Curve<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Curves against x (optimizer steps, say), each on its own y scale from 0
/// to its largest value, drawn on one frame; the legend gives each curve's
/// largest value.
pub fn curves(title: &str, x_label: &str, series: &[Curve]) -> String {
    draw_curves(title, x_label, series, None)
}

/// Curves against x on one y scale from 0 to `y_max` (accuracies, say).
pub fn curves_on_one_scale(title: &str, x_label: &str, series: &[Curve], y_max: f64) -> String {
    draw_curves(title, x_label, series, Some(y_max))
}

fn draw_curves(title: &str, x_label: &str, series: &[Curve], shared: Option<f64>) -> String {
    let (left, top, w, h) = (50.0, 40.0, 560.0, 260.0);
    let x_max = series
        .iter()
        .flat_map(|c| c.points.iter().map(|q| q.0))
        .fold(if shared.is_some() { 1e-12f64 } else { 1.0f64 }, f64::max);
    let mut svg = document(left + w + 30.0, top + h + 60.0, 12);
    let s = &mut svg;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
    );
    for (
        k,
        Curve {
            label,
            colour,
            points,
        },
    ) in series.iter().enumerate()
    {
        let y_max = shared.unwrap_or_else(|| points.iter().map(|p| p.1).fold(1e-12f64, f64::max));
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    left + w * x / x_max,
                    top + h * (1.0 - y / y_max)
                )
            })
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                path.join(" ")
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{} (top of the frame: {y_max:.4})</text>"#,
            left,
            top + h + 36.0 + 16.0 * k as f64,
            escape(label)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (0 to {x_max})</text>"#,
        left + w / 2.0,
        top + h + 18.0,
        escape(x_label)
    );
    svg.push_str("</svg>\n");
    svg
}
