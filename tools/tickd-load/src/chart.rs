//! `tickd-load chart`: a line chart, as a standalone SVG file, of one column
//! of a results CSV against the connection count.
//!
//! The benchmark scripts need a few small charts and nothing else; writing
//! the SVG by hand keeps the project free of plotting tools. The CSV has a
//! header row; one column names the series (`server`), one is the x value
//! (`conns`, drawn on a log2 axis) and one is the metric (a linear axis
//! from 0, or with `--log-y` a log10 axis, for figures that span decades
//! such as `scripts/scale.sh`'s).

use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of the `chart` subcommand.
#[derive(clap::Args, Debug)]
pub struct ChartArgs {
    /// The CSV file to read (header row, comma-separated, no quoting).
    #[arg(long)]
    pub csv: PathBuf,
    /// Column to plot on the y axis, e.g. `throughput` or `p99_us`.
    #[arg(long)]
    pub metric: String,
    /// Where to write the SVG.
    #[arg(long)]
    pub out: PathBuf,
    /// Column that names each line.
    #[arg(long, default_value = "server")]
    pub series: String,
    /// Column for the x axis (positive numbers, log2 scale).
    #[arg(long, default_value = "conns")]
    pub x: String,
    /// Chart title (defaults to the metric against the x column).
    #[arg(long)]
    pub title: Option<String>,
    /// Small print under the title.
    #[arg(long)]
    pub note: Option<String>,
    /// Draw the y axis on a log10 scale (every value must be positive).
    #[arg(long)]
    pub log_y: bool,
}

/// The lines, in the order their names first appear in the CSV, each with
/// its points sorted by x.
type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Reads the CSV, draws the chart, writes the file.
pub fn main(args: &ChartArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.csv)
        .map_err(|e| format!("cannot read {}: {e}", args.csv.display()))?;
    let series = parse(&text, &args.series, &args.x, &args.metric)
        .map_err(|e| format!("{}: {e}", args.csv.display()))?;
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("{} against {}", label(&args.metric), args.x));
    if args.log_y && series.iter().flat_map(|(_, p)| p).any(|p| p.1 <= 0.0) {
        return Err(format!(
            "{}: --log-y needs positive values of {}",
            args.csv.display(),
            args.metric
        ));
    }
    let y = if args.log_y {
        YAxis::Log
    } else {
        YAxis::Linear
    };
    let svg = render(
        &series,
        &title,
        args.note.as_deref(),
        &args.x,
        &args.metric,
        y,
    )?;
    std::fs::write(&args.out, svg).map_err(|e| format!("cannot write {}: {e}", args.out.display()))
}

/// Picks the three columns out of the CSV, reporting every bad row.
fn parse(text: &str, series_col: &str, x_col: &str, y_col: &str) -> Result<Series, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty file")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no column {name:?} (columns: {})", header.join(", ")))
    };
    let (si, xi, yi) = (col(series_col)?, col(x_col)?, col(y_col)?);
    let mut out = Series::new();
    let mut bad = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| cells.get(i).copied().unwrap_or("");
        match (get(xi).parse::<f64>(), get(yi).parse::<f64>()) {
            (Ok(x), Ok(y)) if x > 0.0 && y.is_finite() => {
                let name = get(si);
                match out.iter_mut().find(|(n, _)| n == name) {
                    Some((_, points)) => points.push((x, y)),
                    None => out.push((name.to_string(), vec![(x, y)])),
                }
            }
            _ => bad.push(format!("row {}: {line:?}", n + 2)),
        }
    }
    if !bad.is_empty() {
        return Err(format!("bad rows: {}", bad.join("; ")));
    }
    if out.is_empty() {
        return Err("no data rows".into());
    }
    for (_, points) in &mut out {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(out)
}

/// Human name of a known metric column.
fn label(metric: &str) -> String {
    match metric {
        "throughput" => "requests per second".into(),
        m => match m.strip_suffix("_us") {
            Some(p) => format!("{p} latency (µs)"),
            None => m.into(),
        },
    }
}

/// The smallest 1, 2 or 5 × 10^k that is at least `x`.
fn nice_step(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// Short tick label: 1500 → "1.5k", 2000000 → "2M".
fn short(v: f64) -> String {
    let (v, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if v > 0.0 && v < 1.0 {
        // Fractions (seconds on a log axis): up to three decimals.
        let s = format!("{v:.3}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let s = format!("{v:.1}");
    format!("{}{suffix}", s.strip_suffix(".0").unwrap_or(&s))
}

/// Escapes text for SVG content and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];
const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 140.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 55.0;

/// How the y axis maps values.
#[derive(Clone, Copy, PartialEq)]
enum YAxis {
    /// From 0, ticks at a 1, 2 or 5 × 10^k step.
    Linear,
    /// log10, ticks at each power of ten.
    Log,
}

/// Draws the chart: log2 x axis with a tick per x value, y axis as `y`.
fn render(
    series: &Series,
    title: &str,
    note: Option<&str>,
    x_name: &str,
    metric: &str,
    y_axis: YAxis,
) -> Result<String, String> {
    let xs: Vec<f64> = {
        let mut v: Vec<f64> = series.iter().flat_map(|(_, p)| p).map(|p| p.0).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let (xmin, xmax) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) => (a.log2(), b.log2()),
        _ => return Err("no points".into()),
    };
    let xspan = if xmax > xmin { xmax - xmin } else { 1.0 };
    let ymax_data = series
        .iter()
        .flat_map(|(_, p)| p)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let ymin_data = series
        .iter()
        .flat_map(|(_, p)| p)
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    let step = nice_step(ymax_data / 5.0);
    let ymax = (step * (ymax_data / step).ceil()).max(step);
    // The decades around the data, for a log axis.
    let (dlo, dhi) = (ymin_data.log10().floor(), ymax_data.log10().ceil());
    let dhi = if dhi > dlo { dhi } else { dlo + 1.0 };
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x.log2() - xmin) / xspan * pw;
    let py = |y: f64| match y_axis {
        YAxis::Linear => TOP + ph - y / ymax * ph,
        YAxis::Log => TOP + ph - (y.log10() - dlo) / (dhi - dlo) * ph,
    };
    let ticks: Vec<f64> = match y_axis {
        YAxis::Linear => (0..)
            .map(|i| f64::from(i) * step)
            .take_while(|y| *y <= ymax * (1.0 + 1e-9))
            .collect(),
        YAxis::Log => (dlo as i32..=dhi as i32).map(|d| 10f64.powi(d)).collect(),
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    if let Some(n) = note {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="42" font-size="11" fill="#555">{}</text>"##,
            esc(n)
        );
    }
    // Horizontal grid and y labels.
    for &y in &ticks {
        let yy = py(y);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            short(y)
        );
    }
    // Vertical grid and x labels.
    for &x in &xs {
        let xx = px(x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            short(x)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log2 scale)</text>"#,
        LEFT + pw / 2.0,
        H - 12.0,
        esc(x_name)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}{}</text>"#,
        TOP + ph / 2.0,
        esc(&label(metric)),
        if y_axis == YAxis::Log {
            " (log10 scale)"
        } else {
            ""
        }
    );
    // One polyline with markers per series, and its legend entry.
    for (k, (name, points)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{} {} {}: {}</title></circle>"#,
                px(x),
                py(y),
                esc(name),
                esc(x_name),
                x,
                short(y)
            );
        }
        let ly = TOP + 10.0 + 20.0 * k as f64;
        let lx = LEFT + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7000.0), 10000.0);
    }

    #[test]
    fn short_labels() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(250.0), "250");
        assert_eq!(short(0.01), "0.01");
        assert_eq!(short(0.5), "0.5");
    }

    #[test]
    fn parse_and_render() {
        let csv = "server,conns,depth,throughput\ntickd,1,1,100\nredis,1,1,150\ntickd,4,1,300\nredis,4,1,350\n";
        let s = parse(csv, "server", "conns", "throughput").expect("parses");
        assert_eq!(
            s[0],
            ("tickd".to_string(), vec![(1.0, 100.0), (4.0, 300.0)])
        );
        let svg = render(&s, "t <&>", None, "conns", "throughput", YAxis::Linear).expect("renders");
        assert!(svg.starts_with("<svg") && svg.contains("t &lt;&amp;&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn a_log_axis_has_a_tick_per_decade() {
        let csv = "series,jobs,value\nrss,1000,0.5\nrss,1000000,700\n";
        let s = parse(csv, "series", "jobs", "value").expect("parses");
        let svg = render(&s, "t", None, "jobs", "value", YAxis::Log).expect("renders");
        for tick in [">0.1<", ">1<", ">10<", ">100<", ">1k<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
        assert!(svg.contains("(log10 scale)"));
    }

    #[test]
    fn bad_rows_are_all_reported() {
        let csv = "server,conns,throughput\na,x,1\nb,2,\n";
        let e = parse(csv, "server", "conns", "throughput").expect_err("bad rows");
        assert!(e.contains("row 2") && e.contains("row 3"), "{e}");
        assert!(parse(csv, "server", "conns", "p99").is_err());
    }
}
