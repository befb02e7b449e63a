//! Charts as inline SVG, drawn on the server: no script, no library, no
//! font to fetch; the numbers are in the markup (`data-values`) for
//! whoever wants them exactly.

use std::fmt::Write as _;

use super::html::esc;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One line of a chart: a value per period (`None`: nothing to show, as
/// the latency of a minute without requests).
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<Option<f64>>,
}

impl Series<'_> {
    fn total(&self) -> f64 {
        self.values.iter().flatten().sum()
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// A line chart `id` (its `data-chart`) over `labels` (one per period, in
/// order); the series must have as many values as there are labels.
pub fn chart(id: &str, title: &str, unit: &str, labels: &[String], series: &[Series]) -> String {
    let n = labels.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    // A round top, so the axis reads 0, half and top.
    let top = nice(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);

    let summary: Vec<String> = series
        .iter()
        .map(|s| format!("{} {}", s.name, number(s.total())))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "<figure><figcaption id=\"chart-{id}\">{}</figcaption>\
         <svg data-chart=\"{id}\" role=\"img\" aria-labelledby=\"chart-{id} chart-{id}-desc\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\">\
         <desc id=\"chart-{id}-desc\">{} over {} periods: {}</desc>",
        esc(title),
        esc(unit),
        labels.len(),
        esc(&summary.join(", "))
    );
    // Grid and axis labels.
    for (v, label) in [
        (0.0, "0".to_owned()),
        (top / 2.0, number(top / 2.0)),
        (top, number(top)),
    ] {
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#d5dbe1\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6570\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            esc(&label),
            yy = y(v),
        );
    }
    let ticks: Vec<usize> = if labels.is_empty() {
        Vec::new()
    } else {
        let mut t = vec![0, labels.len() / 2, labels.len() - 1];
        t.dedup();
        t
    };
    for (k, &i) in ticks.iter().enumerate() {
        let anchor = match k {
            0 => "start",
            _ if i == labels.len() - 1 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\" fill=\"#5b6570\">{}</text>",
            x(i),
            HEIGHT - 8.0,
            esc(&labels[i])
        );
    }
    for s in series {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate().take(n) {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let values: Vec<String> = s
            .values
            .iter()
            .map(|v| v.map(number).unwrap_or_default())
            .collect();
        let _ = write!(
            out,
            "<path data-series=\"{}\" data-total=\"{}\" data-values=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            esc(s.name),
            number(s.total()),
            values.join(","),
            d.trim_end(),
            esc(s.color)
        );
        // A lone point draws no line: mark every point with a dot.
        if s.values.iter().flatten().count() <= 1 {
            for (i, v) in s.values.iter().enumerate() {
                if let Some(v) = v {
                    let _ = write!(
                        out,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                        x(i),
                        y(*v),
                        esc(s.color)
                    );
                }
            }
        }
    }
    out.push_str("</svg><ul class=\"plain legend\">");
    for s in series {
        let _ = write!(
            out,
            "<li><span style=\"color:{}\">■</span> {}: {}</li>",
            esc(s.color),
            esc(s.name),
            number(s.total())
        );
    }
    out.push_str("</ul></figure>");
    out
}

/// The smallest of 1, 2 and 5 times a power of ten at or above `max`.
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&t| t >= max)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:02}:00")).collect()
    }

    #[test]
    fn a_known_series_is_drawn_to_scale() {
        let s = Series {
            name: "requests",
            color: "#0b57d0",
            values: vec![Some(0.0), Some(5.0), Some(10.0)],
        };
        let svg = chart("requests", "Requests", "requests", &labels(3), &[s]);
        assert!(svg.contains("data-chart=\"requests\""));
        assert!(svg.contains("data-values=\"0,5,10\""));
        assert!(svg.contains("data-total=\"15\""));
        // Top of the axis is 10: 0 at the bottom (y 172), 10 at the top
        // (y 12), the first point on the left edge, the last on the right.
        assert!(
            svg.contains("d=\"M48.0,172.0 L338.0,92.0 L628.0,12.0\""),
            "{svg}"
        );
        assert!(svg.contains(">10</text>"));
        assert!(svg.contains(
            "<desc id=\"chart-requests-desc\">requests over 3 periods: requests 15</desc>"
        ));
    }

    #[test]
    fn gaps_break_the_line() {
        let s = Series {
            name: "p50",
            color: "#000",
            values: vec![Some(2.0), None, Some(2.0), Some(1.0)],
        };
        let svg = chart("latency", "Latency", "ms", &labels(4), &[s]);
        assert!(
            svg.contains("d=\"M48.0,12.0 M434.7,12.0 L628.0,92.0\""),
            "{svg}"
        );
        assert!(svg.contains("data-values=\"2,,2,1\""));
    }

    #[test]
    fn an_empty_chart_still_renders() {
        let s = Series {
            name: "requests",
            color: "#000",
            values: vec![None; 3],
        };
        let svg = chart("requests", "Requests", "requests", &labels(3), &[s]);
        assert!(svg.contains("data-total=\"0\""));
        assert!(svg.contains("d=\"\""));
        let none = chart("x", "X", "x", &[], &[]);
        assert!(none.contains("</svg>"));
    }

    #[test]
    fn names_are_escaped() {
        let s = Series {
            name: "<i>",
            color: "red\"",
            values: vec![Some(1.0)],
        };
        let svg = chart("x", "<b>", "u", &labels(1), &[s]);
        assert!(!svg.contains("<i>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;i&gt;") && svg.contains("red&quot;"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(10.0), 10.0);
        assert_eq!(nice(11.0), 20.0);
        assert_eq!(nice(0.3), 0.5);
        assert_eq!(nice(420.0), 500.0);
    }
}
