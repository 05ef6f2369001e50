//! SVG and PNG figures of the real-model diagnostics (plotters).
//!
//! Text needs a TrueType font: `$POSENC_FONT` if set, else the first of a few common system
//! fonts (DejaVu Sans, Liberation Sans, ...). Without one the figures are skipped with a
//! message; the JSON results do not depend on them.

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Font files tried in order when `$POSENC_FONT` is not set.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font for plotters once; the error says how to provide one.
fn ensure_font() -> anyhow::Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var_os("POSENC_FONT").map(PathBuf::from);
        let candidates: Vec<PathBuf> = match from_env {
            Some(p) => vec![p],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        for path in &candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font for the figure labels (tried {}); set POSENC_FONT=/path/to/font.ttf",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One heatmap panel: `values[r][c]`, row labels top to bottom.
pub struct Heatmap {
    /// Panel title.
    pub title: String,
    /// Row labels (drawn top to bottom).
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// `rows × cols` values (NaN = no value).
    pub values: Vec<Vec<f64>>,
    /// Axis names.
    pub row_desc: String,
    /// Axis names.
    pub col_desc: String,
    /// Colour range; `None` = the data's min and max.
    pub range: Option<(f64, f64)>,
    /// Digits printed in each cell (`None` = no numbers).
    pub annotate: Option<usize>,
}

/// One line chart panel.
pub struct LinePanel {
    /// Panel title.
    pub title: String,
    /// `(name, points)` per series.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Axis names.
    pub x_desc: String,
    /// Axis names.
    pub y_desc: String,
    /// A vertical marker line `(x, label)`.
    pub marker: Option<(f64, String)>,
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Writes `base.svg` and `base.png` with the heatmap panels side by side. Returns the paths.
pub fn heatmaps(
    base: &Path,
    title: &str,
    panels: &[Heatmap],
    grid: (usize, usize),
    size: (u32, u32),
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font()?;
    let svg = base.with_extension("svg");
    let png = base.with_extension("png");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_heatmaps(&root, title, panels, grid)?;
        root.present().map_err(err)?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_heatmaps(&root, title, panels, grid)?;
        root.present().map_err(err)?;
    }
    Ok(vec![svg, png])
}

/// Writes `base.svg` and `base.png` with the line panels side by side (log2 x, log y).
pub fn line_charts(
    base: &Path,
    title: &str,
    panels: &[LinePanel],
    size: (u32, u32),
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font()?;
    let svg = base.with_extension("svg");
    let png = base.with_extension("png");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_lines(&root, title, panels)?;
        root.present().map_err(err)?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_lines(&root, title, panels)?;
        root.present().map_err(err)?;
    }
    Ok(vec![svg, png])
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo.is_finite() {
        if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        }
    } else {
        (0.0, 1.0)
    }
}

fn fmt_value(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.digits$}")
    }
}

fn draw_heatmaps<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Heatmap],
    grid: (usize, usize),
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let areas = root.split_evenly(grid);
    for (area, p) in areas.iter().zip(panels) {
        let (nr, nc) = (p.rows.len(), p.cols.len());
        if nr == 0 || nc == 0 {
            continue;
        }
        let (lo, hi) = p
            .range
            .unwrap_or_else(|| finite_range(p.values.iter().flatten().copied()));
        let (w, _) = area.dim_in_pixel();
        let (main, bar) = area.split_horizontally(w.saturating_sub(70));
        let mut chart = ChartBuilder::on(&main)
            .caption(&p.title, ("sans-serif", 15))
            .margin(6)
            .x_label_area_size(44)
            .y_label_area_size(60)
            // Cell (r, c) spans [c - 0.5, c + 0.5] so that integer key points are cell centres.
            .build_cartesian_2d(-0.5..nc as f64 - 0.5, -0.5..nr as f64 - 0.5)
            .map_err(err)?;
        let step_x = nc.div_ceil(9).max(1);
        let step_y = nr.div_ceil(32).max(1);
        // Data row r is drawn at y = nr-1-r, so row 0 is at the top.
        let label = |labels: &[String], v: f64, step: usize, flip: bool| {
            let i = v.round();
            if (v - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            let i = i as usize;
            let idx = if flip {
                (labels.len() - 1).checked_sub(i)
            } else {
                Some(i)
            };
            match idx {
                Some(k) if k < labels.len() && k % step == 0 => labels[k].clone(),
                _ => String::new(),
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc + 1)
            .y_labels(nr + 1)
            .x_label_formatter(&|v| label(&p.cols, *v, step_x, false))
            .y_label_formatter(&|v| label(&p.rows, *v, step_y, true))
            .x_desc(&p.col_desc)
            .y_desc(&p.row_desc)
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        let colour = |v: f64| -> RGBColor {
            if v.is_finite() {
                ViridisRGB::get_color_normalized(v.clamp(lo, hi) as f32, lo as f32, hi as f32)
            } else {
                RGBColor(200, 200, 200)
            }
        };
        let value = |r: usize, c: usize| p.values[r].get(c).copied().unwrap_or(f64::NAN);
        let cells = || (0..nr).flat_map(move |r| (0..nc).map(move |c| (r, c)));
        let centre = |r: usize, c: usize| (c as f64, (nr - 1 - r) as f64);
        chart
            .draw_series(cells().map(|(r, c)| {
                let (x, y) = centre(r, c);
                Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    colour(value(r, c)).filled(),
                )
            }))
            .map_err(err)?;
        if let Some(digits) = p.annotate {
            let centred = plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            );
            chart
                .draw_series(cells().map(|(r, c)| {
                    let v = value(r, c);
                    let dark_cell = v.is_finite() && (v - lo) / (hi - lo) < 0.55;
                    let style = TextStyle::from(("sans-serif", 11).into_font())
                        .color(if dark_cell { &WHITE } else { &BLACK })
                        .pos(centred);
                    EmptyElement::at(centre(r, c)) + Text::new(fmt_value(v, digits), (0, 0), style)
                }))
                .map_err(err)?;
        }
        // Colour bar.
        let (_, bh) = bar.dim_in_pixel();
        let top = 40i32;
        let bottom = bh as i32 - 50;
        let steps = 64;
        for s in 0..steps {
            let t0 = top + (bottom - top) * s / steps;
            let t1 = top + (bottom - top) * (s + 1) / steps;
            let v = hi - (hi - lo) * (s as f64 + 0.5) / steps as f64;
            bar.draw(&Rectangle::new([(8, t0), (24, t1)], colour(v).filled()))
                .map_err(err)?;
        }
        let small = ("sans-serif", 11).into_font();
        bar.draw(&Text::new(fmt_value(hi, 2), (27, top - 4), small.clone()))
            .map_err(err)?;
        bar.draw(&Text::new(fmt_value(lo, 2), (27, bottom - 8), small))
            .map_err(err)?;
    }
    Ok(())
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[LinePanel],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, p) in areas.iter().zip(panels) {
        // x on a log2 axis labelled at powers of two; y logarithmic.
        let points = || p.series.iter().flat_map(|(_, pts)| pts.iter());
        let (x0, x1) = finite_range(
            points()
                .map(|&(x, _)| x)
                .filter(|x| *x > 0.0)
                .map(f64::log2),
        );
        let (y0, y1) = finite_range(points().map(|&(_, y)| y).filter(|y| *y > 0.0));
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x0 - 0.25..x1 + 0.25, (y0 / 1.15..y1 * 1.15).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&p.x_desc)
            .y_desc(&p.y_desc)
            .x_labels(((x1 - x0).ceil() as usize + 2) * 2)
            .x_label_formatter(&|v| {
                let k = v.round();
                if (v - k).abs() > 1e-6 {
                    return String::new();
                }
                let n = 2f64.powf(k);
                if n >= 1024.0 {
                    format!("{}K", n / 1024.0)
                } else {
                    format!("{n:.0}")
                }
            })
            .y_label_formatter(&|y| fmt_value(*y, 1))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        if let Some((x, label)) = p
            .marker
            .as_ref()
            .filter(|(x, _)| *x > 0.0 && (x0 - 0.25..=x1 + 0.25).contains(&x.log2()))
        {
            let x = x.log2();
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, y0 / 1.1), (x, y1 * 1.1)],
                    6,
                    4,
                    RGBColor(120, 120, 120).stroke_width(1),
                ))
                .map_err(err)?
                .label(label.clone())
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(120, 120, 120))
                });
        }
        for (i, (name, pts)) in p.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            // The first series drawn widest, so that a later one that coincides with it (dynamic
            // NTK equals no scaling inside the training context) does not hide it.
            let width = if i == 0 { 5 } else { 2 };
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|&(x, y)| x > 0.0 && y > 0.0 && y.is_finite())
                .map(|(x, y)| (x.log2(), y))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(width)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(width))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Writes a figure and reports where, or says why it was skipped (the caller goes on).
pub fn report_written(result: anyhow::Result<Vec<PathBuf>>, quiet: bool) -> Vec<PathBuf> {
    match result.context("figure not written") {
        Ok(paths) => {
            if !quiet {
                for p in &paths {
                    println!("wrote {}", p.display());
                }
            }
            paths
        }
        Err(e) => {
            eprintln!("posenc: warning: {e:#}");
            Vec::new()
        }
    }
}

/// A point with its spread: `(x, y, y_low, y_high)`.
pub type BandPoint = (f64, f64, f64, f64);

/// One panel of lines with error bars: per series `(x, mean, low, high)` points.
pub struct BandPanel {
    /// Panel title.
    pub title: String,
    /// `(name, colour index, points)` per series (the index picks a palette colour, so a
    /// series keeps its colour across panels); a point is `(x, y, y_low, y_high)`.
    pub series: Vec<(String, usize, Vec<BandPoint>)>,
    /// Axis names.
    pub x_desc: String,
    /// Axis names.
    pub y_desc: String,
    /// Logarithmic y axis (else linear, from 0 for values in [0, 1]).
    pub log_y: bool,
    /// A vertical marker line `(x, label)`.
    pub marker: Option<(f64, String)>,
}

/// Writes `base.svg` and `base.png`: the panels side by side, log2 x, lines through the means
/// and vertical bars from low to high. Returns the paths.
pub fn band_charts(
    base: &Path,
    title: &str,
    panels: &[BandPanel],
    size: (u32, u32),
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font()?;
    let svg = base.with_extension("svg");
    let png = base.with_extension("png");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw_bands(&root, title, panels)?;
        root.present().map_err(err)?;
    }
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw_bands(&root, title, panels)?;
        root.present().map_err(err)?;
    }
    Ok(vec![svg, png])
}

fn draw_bands<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[BandPanel],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, p) in areas.iter().zip(panels) {
        // A log y axis is drawn as log10(y) on a linear axis, labelled with y.
        let fy = |y: f64| if p.log_y { y.log10() } else { y };
        let usable = |y: f64| y.is_finite() && (!p.log_y || y > 0.0);
        let points = || p.series.iter().flat_map(|(_, _, pts)| pts.iter());
        let (x0, x1) = finite_range(points().map(|q| q.0).filter(|x| *x > 0.0).map(f64::log2));
        let (y0, y1) = finite_range(
            points()
                .flat_map(|q| [q.1, q.2, q.3])
                .filter(|y| usable(*y))
                .map(fy),
        );
        let (ylo, yhi) = if !p.log_y && y0 >= 0.0 && y1 <= 1.0 {
            (0.0, 1.02)
        } else {
            let pad = (y1 - y0).max(1e-3) * 0.06;
            (y0 - pad, y1 + pad)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x0 - 0.3..x1 + 0.3, ylo..yhi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(&p.x_desc)
            .y_desc(&p.y_desc)
            .x_labels(((x1 - x0).ceil() as usize + 2) * 2)
            .x_label_formatter(&|v| {
                let k = v.round();
                if (v - k).abs() > 1e-6 {
                    return String::new();
                }
                format!("{:.0}", 2f64.powf(k))
            })
            .y_label_formatter(&|y| fmt_value(if p.log_y { 10f64.powf(*y) } else { *y }, 2))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        if let Some((x, label)) = p.marker.as_ref().filter(|(x, _)| *x > 0.0) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x.log2(), ylo), (x.log2(), yhi)],
                    6,
                    4,
                    RGBColor(120, 120, 120).stroke_width(1),
                ))
                .map_err(err)?
                .label(label.clone())
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(120, 120, 120))
                });
        }
        for (name, colour_index, pts) in &p.series {
            let colour = Palette99::pick(*colour_index).to_rgba();
            let pts: Vec<(f64, f64, f64, f64)> = pts
                .iter()
                .copied()
                .filter(|q| q.0 > 0.0 && usable(q.1) && usable(q.2) && usable(q.3))
                .map(|(x, y, lo, hi)| (x.log2(), fy(y), fy(lo), fy(hi)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|q| (q.0, q.1)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|q| {
                    PathElement::new(vec![(q.0, q.2), (q.0, q.3)], colour.stroke_width(1))
                }))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}
