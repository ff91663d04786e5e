//! A tiny SVG chart writer (grouped bars and lines) for the experiment reports: no plotting
//! crate, plain text a browser or a Markdown viewer renders.

use std::fmt::Write as _;

/// One named series of values (one per category / x point).
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// One value per category.
    pub values: Vec<f64>,
}

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound of the y axis.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn frame(out: &mut String, title: &str, y_label: &str, ymax: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        esc(title),
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label)
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let y = H - BOTTOM - (H - TOP - BOTTOM) * i as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
    }
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 || v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(out: &mut String, series: &[Series]) {
    for (i, s) in series.iter().enumerate() {
        let x = LEFT + 10.0 + 150.0 * (i % 4) as f64;
        // Four entries a row, rows below the x labels.
        let y = H - BOTTOM + 36.0 + 16.0 * (i / 4) as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLORS[i % COLORS.len()],
            x + 16.0,
            esc(&s.name)
        );
    }
}

/// Grouped bar chart: one group per category, one bar per series.
pub fn bars(title: &str, y_label: &str, categories: &[String], series: &[Series]) -> String {
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    frame(&mut out, title, y_label, ymax);
    let plot_w = W - LEFT - RIGHT;
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (c, cat) in categories.iter().enumerate() {
        let gx = LEFT + group_w * c as f64 + group_w * 0.1;
        for (i, s) in series.iter().enumerate() {
            let v = s.values.get(c).copied().unwrap_or(0.0);
            let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
            let h = (H - TOP - BOTTOM) * v / ymax;
            let x = gx + bar_w * i as f64;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {v}</title></rect>"#,
                H - BOTTOM - h,
                bar_w * 0.95,
                COLORS[i % COLORS.len()],
                esc(&s.name)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            H - BOTTOM + 16.0,
            esc(cat)
        );
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// Line chart: categories as evenly spaced x points, one polyline per series.
pub fn lines(title: &str, y_label: &str, categories: &[String], series: &[Series]) -> String {
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    frame(&mut out, title, y_label, ymax);
    let plot_w = W - LEFT - RIGHT;
    let n = categories.len().max(1);
    let x_of = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    for (i, cat) in categories.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_of(i),
            H - BOTTOM + 16.0,
            esc(cat)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| {
                format!(
                    "{:.1},{:.1}",
                    x_of(i),
                    H - BOTTOM - (H - TOP - BOTTOM) * v.max(0.0) / ymax
                )
            })
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars(
            "a < b",
            "s",
            &["x".into(), "y".into()],
            &[Series {
                name: "cloud & edge".into(),
                values: vec![1.0, 4.0],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b") && svg.contains("cloud &amp; edge"));
        // 4.0 -> nice max 5: the taller bar is 4/5 of the plot height (290 px).
        assert!(svg.contains(r#"height="232.0""#), "{svg}");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(20.19), 25.0);
    }

    #[test]
    fn lines_draw_one_point_per_value() {
        let svg = lines(
            "t",
            "y",
            &["1".into(), "10".into(), "100".into()],
            &[Series {
                name: "s".into(),
                values: vec![1.0, 2.0, 3.0],
            }],
        );
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
