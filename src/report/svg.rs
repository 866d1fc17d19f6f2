//! A small SVG writer for the HTML report: line charts on linear or log
//! axes and horizontal bar charts, drawn at a fixed size, styled by the
//! report's CSS classes (`chart`, `grid`, `axis`, `tick`, `legend`).
//!
//! The SVG is meant to be inlined in HTML, so it carries no `xmlns` (and
//! the report no URL at all).

use std::fmt::Write as _;

use super::markup::escape;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 20.0;
/// The plot's top without a legend; each legend row adds [`LEGEND_ROW`].
const TOP: f64 = 40.0;
const LEGEND_ROW: f64 = 16.0;
const BOTTOM: f64 = 46.0;
/// Lines with at most this many points also get a dot per point.
const DOTS_UP_TO: usize = 40;

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Decades; values ≤ 0 are not drawn.
    Log,
}

#[derive(Debug, Clone, Copy)]
pub struct Axis<'a> {
    pub label: &'a str,
    pub scale: Scale,
    /// Writes a tick value.
    pub format: fn(f64) -> String,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub label: &'a str,
    /// A CSS colour.
    pub color: &'a str,
    pub dashed: bool,
    /// `(x, y)` in drawing order; a point with a non-finite y breaks the line.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x: Axis<'a>,
    pub y: Axis<'a>,
    pub lines: Vec<Line<'a>>,
}

/// One bar of a bar chart.
#[derive(Debug, Clone)]
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: f64,
    pub color: &'a str,
}

/// Horizontal bars, one row each, scaled to the largest.
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    pub title: &'a str,
    pub bars: Vec<Bar<'a>>,
    /// Writes a bar's value.
    pub format: fn(f64) -> String,
}

/// The span an axis shows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    lo: f64,
    hi: f64,
    scale: Scale,
}

fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = span / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

impl Range {
    /// The range covering `values` (the drawable ones); `None` when none is.
    fn of(scale: Scale, values: impl Iterator<Item = f64>) -> Option<Range> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return None;
        }
        Some(match scale {
            Scale::Linear => {
                let lo = lo.min(0.0);
                let hi = if hi > lo { hi } else { lo + 1.0 };
                let step = nice_step(hi - lo, 5.0);
                Range {
                    lo: (lo / step).floor() * step,
                    hi: (hi / step).ceil() * step,
                    scale,
                }
            }
            Scale::Log => {
                let lo = 10f64.powf(lo.log10().floor());
                let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
                Range { lo, hi, scale }
            }
        })
    }

    fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => {
                let step = nice_step(self.hi - self.lo, 5.0);
                let n = ((self.hi - self.lo) / step).round() as usize;
                (0..=n).map(|i| self.lo + step * i as f64).collect()
            }
            Scale::Log => {
                let decades = (self.hi / self.lo).log10().round() as usize;
                // At most ~8 labels: skip decades on wide ranges.
                let every = decades.div_ceil(8).max(1);
                (0..=decades)
                    .step_by(every)
                    .map(|d| self.lo * 10f64.powi(d as i32))
                    .collect()
            }
        }
    }

    /// Where `v` falls, 0 at `lo` and 1 at `hi`; `None` if not drawable.
    fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        match self.scale {
            Scale::Linear => Some((v - self.lo) / (self.hi - self.lo)),
            Scale::Log if v > 0.0 => Some((v / self.lo).ln() / (self.hi / self.lo).ln()),
            Scale::Log => None,
        }
    }
}

fn open(out: &mut String, title: &str, height: f64) {
    let title = escape(title);
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{title}"><title>{title}</title><text class="title" x="{LEFT}" y="22">{title}</text>"#
    );
}

/// Where each legend entry goes: `(x, row)`, wrapping at the chart's width.
fn legend_layout(labels: impl Iterator<Item = usize>) -> (Vec<(f64, usize)>, usize) {
    let (mut x, mut row) = (LEFT, 0);
    let mut places = Vec::new();
    for chars in labels {
        let width = 23.0 + 6.2 * chars as f64 + 16.0;
        if x > LEFT && x + width > WIDTH - RIGHT {
            x = LEFT;
            row += 1;
        }
        places.push((x, row));
        x += width;
    }
    let rows = if places.is_empty() { 0 } else { row + 1 };
    (places, rows)
}

impl LineChart<'_> {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let (legend, rows) = legend_layout(self.lines.iter().map(|l| l.label.chars().count()));
        let top = TOP + LEGEND_ROW * rows as f64;
        let height = HEIGHT + LEGEND_ROW * rows.saturating_sub(1) as f64;
        open(&mut out, self.title, height);
        let points = || self.lines.iter().flat_map(|l| l.points.iter());
        let x = Range::of(self.x.scale, points().map(|p| p.0));
        let y = Range::of(self.y.scale, points().filter(|p| p.0.is_finite()).map(|p| p.1));
        let (Some(x), Some(y)) = (x, y) else {
            let _ = write!(
                out,
                r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no data</text></svg>"#,
                WIDTH / 2.0,
                height / 2.0
            );
            return out;
        };
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, height - top - BOTTOM);
        let px = |v: f64| x.frac(v).map(|f| LEFT + f * plot_w);
        let py = |v: f64| y.frac(v).map(|f| top + (1.0 - f) * plot_h);

        for t in y.ticks() {
            let Some(ty) = py(t) else { continue };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{ty:.1}" y2="{ty:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                ty + 4.0,
                escape(&(self.y.format)(t))
            );
        }
        for t in x.ticks() {
            let Some(tx) = px(t) else { continue };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{tx:.1}" x2="{tx:.1}" y1="{top}" y2="{:.1}"/><text class="tick" x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                top + plot_h,
                top + plot_h + 16.0,
                escape(&(self.x.format)(t))
            );
        }
        let _ = write!(
            out,
            r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{:.1}"/>"#,
            WIDTH - RIGHT,
            top + plot_h,
            top + plot_h,
            top + plot_h
        );
        let _ = write!(
            out,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            height - 8.0,
            escape(self.x.label),
            top + plot_h / 2.0,
            escape(self.y.label)
        );

        for line in &self.lines {
            let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
            let color = escape(line.color);
            let label = escape(line.label);
            // Runs of drawable points, split where a point is not.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &(vx, vy) in &line.points {
                match (px(vx), py(vy), runs.last_mut()) {
                    (Some(sx), Some(sy), Some(run)) => run.push((sx, sy)),
                    _ => runs.push(Vec::new()),
                }
            }
            for run in runs.iter().filter(|r| r.len() > 1) {
                let _ = write!(
                    out,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points=""#
                );
                for (sx, sy) in run {
                    let _ = write!(out, "{sx:.1},{sy:.1} ");
                }
                let _ = write!(out, r#""><title>{label}</title></polyline>"#);
            }
            if line.points.len() <= DOTS_UP_TO {
                for (sx, sy) in runs.iter().flatten() {
                    let _ = write!(
                        out,
                        r#"<circle cx="{sx:.1}" cy="{sy:.1}" r="2.5" fill="{color}"><title>{label}</title></circle>"#
                    );
                }
            }
        }

        // The legend, in rows under the title.
        for (line, (lx, row)) in self.lines.iter().zip(legend) {
            let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
            let ly = 36.0 + LEGEND_ROW * row as f64;
            let _ = write!(
                out,
                r#"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{}" stroke-width="3"{dash}/><text class="legend" x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 18.0,
                escape(line.color),
                lx + 23.0,
                ly + 4.0,
                escape(line.label)
            );
        }
        out.push_str("</svg>");
        out
    }
}

impl BarChart<'_> {
    pub fn render(&self) -> String {
        const ROW: f64 = 24.0;
        const LABEL_W: f64 = 150.0;
        let height = TOP - 4.0 + ROW * self.bars.len().max(1) as f64 + 12.0;
        let mut out = String::with_capacity(2048);
        open(&mut out, self.title, height);
        let max = self.bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
        let bar_w = WIDTH - LABEL_W - 110.0;
        for (i, bar) in self.bars.iter().enumerate() {
            let top = TOP - 4.0 + ROW * i as f64;
            let w = if max > 0.0 && bar.value > 0.0 {
                (bar.value / max * bar_w).max(1.0)
            } else {
                0.0
            };
            let value = escape(&(self.format)(bar.value)).into_owned();
            let _ = write!(
                out,
                r#"<text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LABEL_W}" y="{top:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {value}</title></rect><text class="tick" x="{:.1}" y="{:.1}">{value}</text>"#,
                LABEL_W - 8.0,
                top + ROW / 2.0 + 2.0,
                escape(bar.label),
                ROW - 6.0,
                escape(bar.color),
                escape(bar.label),
                LABEL_W + w + 6.0,
                top + ROW / 2.0 + 2.0,
            );
        }
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn linear_ranges_are_rounded_out() {
        let r = Range::of(Scale::Linear, [3.0, 97.0].into_iter()).unwrap();
        assert_eq!((r.lo, r.hi), (0.0, 100.0));
        assert_eq!(r.ticks(), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(r.frac(50.0), Some(0.5));
        let flat = Range::of(Scale::Linear, [0.0].into_iter()).unwrap();
        assert!(flat.hi > flat.lo);
    }

    #[test]
    fn log_ranges_span_whole_decades() {
        let r = Range::of(Scale::Log, [0.0, 3.0, 4_000.0].into_iter()).unwrap();
        assert_eq!((r.lo, r.hi), (1.0, 10_000.0));
        assert_eq!(r.ticks(), [1.0, 10.0, 100.0, 1_000.0, 10_000.0]);
        assert_eq!(r.frac(100.0), Some(0.5));
        assert_eq!(r.frac(0.0), None);
        assert_eq!(Range::of(Scale::Log, [0.0, -1.0].into_iter()), None);
    }

    #[test]
    fn a_line_chart_draws_its_lines_legend_and_gaps() {
        let chart = LineChart {
            title: "Latency <p99>",
            x: Axis {
                label: "s",
                scale: Scale::Linear,
                format: plain,
            },
            y: Axis {
                label: "ms",
                scale: Scale::Log,
                format: plain,
            },
            lines: vec![Line {
                label: "e2e p99",
                color: "#c0392b",
                dashed: true,
                points: vec![(0.0, 1.0), (1.0, 10.0), (2.0, f64::NAN), (3.0, 5.0), (4.0, 50.0)],
            }],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Latency &lt;p99&gt;"));
        // The gap splits the line in two.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains(r#"class="legend""#) && svg.contains("e2e p99"));
        assert!(!svg.contains("://"));
    }

    #[test]
    fn a_long_legend_wraps() {
        let (places, rows) = legend_layout([10, 10].into_iter());
        assert_eq!((places[1].1, rows), (0, 1));
        let (places, rows) = legend_layout(std::iter::repeat_n(20, 8));
        assert!(rows > 1);
        assert!(places.iter().all(|(x, _)| *x + 23.0 + 6.2 * 20.0 <= WIDTH));
        assert_eq!(legend_layout(std::iter::empty()).1, 0);
    }

    #[test]
    fn empty_charts_say_so() {
        let chart = LineChart {
            title: "t",
            x: Axis {
                label: "x",
                scale: Scale::Linear,
                format: plain,
            },
            y: Axis {
                label: "y",
                scale: Scale::Log,
                format: plain,
            },
            lines: vec![],
        };
        assert!(chart.render().contains("no data"));
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let svg = BarChart {
            title: "outcomes",
            bars: vec![
                Bar {
                    label: "ok",
                    value: 100.0,
                    color: "green",
                },
                Bar {
                    label: "server_error",
                    value: 25.0,
                    color: "red",
                },
            ],
            format: plain,
        }
        .render();
        let full = WIDTH - 150.0 - 110.0;
        assert!(svg.contains(&format!(r#"width="{full:.1}""#)), "{svg}");
        assert!(svg.contains(&format!(r#"width="{:.1}""#, full / 4.0)), "{svg}");
    }
}
