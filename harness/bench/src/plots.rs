//! SVG charts with plotters: IOPS of each configuration relative to raw, latency percentiles,
//! and IOPS against queue depth.
//!
//! SVG only, with plotters' font-free text layout: text is written as SVG `<text>` and the
//! viewer renders it, so nothing here needs a font file or a system font library.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::model::BenchRun;
use crate::plan::Config;
use crate::BenchError;

const FONT: &str = "sans-serif";

/// The colour of a configuration, the same in every chart.
pub fn color(config: Config) -> RGBColor {
    match config {
        Config::Raw => RGBColor(127, 127, 127),
        Config::Filter => RGBColor(31, 119, 180),
        Config::Tracked => RGBColor(44, 160, 44),
        Config::Cow => RGBColor(255, 127, 14),
        Config::Overwrite => RGBColor(214, 39, 40),
        Config::DmCow => RGBColor(148, 103, 189),
        Config::DmOverwrite => RGBColor(140, 86, 75),
        Config::Image => RGBColor(23, 190, 207),
        Config::DmImage => RGBColor(227, 119, 194),
    }
}

fn plot_err(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |message| BenchError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

/// File names are made of kernel and workload names: keep them to safe characters.
pub fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Axis numbers without a pointless `.0`: `40000`, `0.5`.
fn format_axis(v: f64) -> String {
    if v >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A label formatter for categories drawn at integer positions of an f64 axis.
fn category_label(names: &[String], x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 || x.round() < 0.0 {
        return String::new();
    }
    names.get(x.round() as usize).cloned().unwrap_or_default()
}

/// Bars of each configuration's IOPS relative to raw (median of the per-round ratios), with
/// min–max whiskers, grouped by workload; a line marks 1.0 (as fast as raw).
pub fn ratio_chart(run: &BenchRun, kernel: &str, path: &Path) -> Result<bool, BenchError> {
    let err = plot_err(path);
    let workloads: Vec<String> = run
        .workloads
        .iter()
        .filter(|w| {
            run.results
                .iter()
                .any(|r| r.kernel == kernel && r.workload == w.name && r.ratio.is_some())
        })
        .map(|w| w.name.clone())
        .collect();
    let configs: Vec<Config> = run
        .configs_present()
        .into_iter()
        .filter(|c| *c != Config::Raw)
        .collect();
    if workloads.is_empty() || configs.is_empty() {
        return Ok(false);
    }
    let top = run
        .results
        .iter()
        .filter(|r| r.kernel == kernel)
        .filter_map(|r| r.ratio.as_ref().map(|x| x.spread.max))
        .fold(1.0_f64, f64::max)
        * 1.15;
    let n = workloads.len() as f64;
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("kernel {kernel}: IOPS relative to the raw device (median of rounds, whiskers min-max)"),
            (FONT, 18),
        )
        .margin(12)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    let names = workloads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(workloads.len() * 2 + 1)
        .x_label_formatter(&|x| category_label(&names, *x))
        .y_desc("IOPS / raw IOPS")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 1.0), (n - 0.5, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(e.to_string()))?;
    let width = 0.8 / configs.len() as f64;
    for (j, config) in configs.iter().enumerate() {
        let colour = color(*config);
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let Some(ratio) = run
                .result(kernel, w, *config)
                .and_then(|r| r.ratio.as_ref())
            else {
                continue;
            };
            let x0 = i as f64 - 0.4 + j as f64 * width;
            let x1 = x0 + width * 0.9;
            let mid = (x0 + x1) / 2.0;
            bars.push(Rectangle::new(
                [(x0, 0.0), (x1, ratio.spread.median)],
                colour.filled(),
            ));
            let s = ratio.spread;
            whiskers.push(PathElement::new(vec![(mid, s.min), (mid, s.max)], BLACK));
            let cap = width * 0.25;
            whiskers.push(PathElement::new(
                vec![(mid - cap, s.min), (mid + cap, s.min)],
                BLACK,
            ));
            whiskers.push(PathElement::new(
                vec![(mid - cap, s.max), (mid + cap, s.max)],
                BLACK,
            ));
        }
        chart.draw_series(bars).map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(whiskers)
            .map_err(|e| err(e.to_string()))?;
    }
    let entries: Vec<(String, RGBColor)> = configs
        .iter()
        .map(|c| (c.name().to_string(), color(*c)))
        .collect();
    draw_legend(&root, &entries).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(true)
}

/// Room to the right of a plot for its legend, so the legend never hides a bar.
const LEGEND_WIDTH: u32 = 140;

/// A legend drawn on the whole canvas, right of the plot (a chart's own legend is clipped to
/// its plotting area, and inside it would hide bars).
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), String> {
    let x = root.dim_in_pixel().0 as i32 - LEGEND_WIDTH as i32 + 8;
    for (i, (label, colour)) in entries.iter().enumerate() {
        let y = 50 + 20 * i as i32;
        root.draw(&Rectangle::new([(x, y), (x + 12, y + 10)], colour.filled()))
            .map_err(|e| e.to_string())?;
        root.draw(&Text::new(label.clone(), (x + 18, y - 1), (FONT, 13)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// p50, p99 and p99.9 latency of each configuration for one workload, on a log scale.
pub fn latency_chart(
    run: &BenchRun,
    kernel: &str,
    workload: &str,
    path: &Path,
) -> Result<bool, BenchError> {
    let err = plot_err(path);
    let cells: Vec<_> = run
        .configs_present()
        .into_iter()
        .filter_map(|c| run.result(kernel, workload, c))
        .filter(|r| r.latency.p50_ns.is_some())
        .collect();
    if cells.is_empty() {
        return Ok(false);
    }
    let us = |ns: Option<f64>| ns.map(|v| (v / 1000.0).max(0.001));
    let values: Vec<f64> = cells
        .iter()
        .flat_map(|c| {
            [
                us(c.latency.p50_ns),
                us(c.latency.p99_ns),
                us(c.latency.p99_9_ns),
            ]
        })
        .flatten()
        .collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min) / 2.0;
    let high = values.iter().copied().fold(0.0, f64::max) * 2.0;
    let names: Vec<String> = cells.iter().map(|c| c.config.name().to_string()).collect();
    let n = cells.len() as f64;
    let direction = cells[0].latency_direction.clone();
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "kernel {kernel}, {workload}: {direction} latency percentiles (median of rounds)"
            ),
            (FONT, 18),
        )
        .margin(12)
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(-0.5..n - 0.5, (low..high).log_scale())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cells.len() * 2 + 1)
        .x_label_formatter(&|x| category_label(&names, *x))
        .y_desc("latency, µs (log scale)")
        .y_label_formatter(&|y| format_axis(*y))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let shades = [
        ("p50", RGBColor(158, 202, 225)),
        ("p99", RGBColor(66, 146, 198)),
        ("p99.9", RGBColor(8, 69, 148)),
    ];
    for (k, (_, shade)) in shades.iter().enumerate() {
        let bars: Vec<_> = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let v = match k {
                    0 => us(c.latency.p50_ns),
                    1 => us(c.latency.p99_ns),
                    _ => us(c.latency.p99_9_ns),
                }?;
                let x0 = i as f64 - 0.36 + k as f64 * 0.24;
                Some(Rectangle::new([(x0, low), (x0 + 0.22, v)], shade.filled()))
            })
            .collect();
        chart.draw_series(bars).map_err(|e| err(e.to_string()))?;
    }
    let entries: Vec<(String, RGBColor)> = shades
        .iter()
        .map(|(label, shade)| (label.to_string(), *shade))
        .collect();
    draw_legend(&root, &entries).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(true)
}

/// Workloads that differ only in queue depth, as (group label, [(iodepth, workload)]), for
/// groups with at least two depths.
pub fn queue_depth_groups(run: &BenchRun) -> Vec<(String, Vec<(u32, String)>)> {
    let mut groups: Vec<(String, Vec<(u32, String)>)> = Vec::new();
    for w in &run.workloads {
        let label = format!("{} bs={}", w.rw, w.bs);
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, members)) => members.push((w.iodepth, w.name.clone())),
            None => groups.push((label, vec![(w.iodepth, w.name.clone())])),
        }
    }
    groups.retain_mut(|(_, members)| {
        members.sort();
        members.dedup_by_key(|(depth, _)| *depth);
        members.len() >= 2
    });
    groups
}

/// Median IOPS against queue depth (log 2 axis), one line per configuration.
pub fn queue_depth_chart(
    run: &BenchRun,
    kernel: &str,
    group: &(String, Vec<(u32, String)>),
    path: &Path,
) -> Result<bool, BenchError> {
    let err = plot_err(path);
    let (label, members) = group;
    let mut lines: Vec<(Config, Vec<(f64, f64)>)> = Vec::new();
    for config in run.configs_present() {
        let points: Vec<(f64, f64)> = members
            .iter()
            .filter_map(|(depth, w)| {
                run.result(kernel, w, config)
                    .map(|r| (f64::from(*depth), r.iops.median))
            })
            .collect();
        if points.len() >= 2 {
            lines.push((config, points));
        }
    }
    if lines.is_empty() {
        return Ok(false);
    }
    // Depths are categories at equal distances (1, 32, ... would crowd a linear axis, and a
    // log axis draws a thicket of minor lines): position i is the i-th depth.
    let depths: Vec<String> = members.iter().map(|(d, _)| format!("QD{d}")).collect();
    let position = |depth: f64| {
        members
            .iter()
            .position(|(d, _)| f64::from(*d) == depth)
            .unwrap_or(0) as f64
    };
    let lines: Vec<(Config, Vec<(f64, f64)>)> = lines
        .into_iter()
        .map(|(c, points)| {
            (
                c,
                points.into_iter().map(|(x, y)| (position(x), y)).collect(),
            )
        })
        .collect();
    let n = members.len() as f64;
    let top = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("kernel {kernel}: IOPS against queue depth ({label})"),
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .margin_right(LEGEND_WIDTH)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top.max(1.0))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(members.len() * 2 + 1)
        .x_label_formatter(&|x| category_label(&depths, *x))
        .x_desc("queue depth")
        .y_desc("IOPS (median of rounds)")
        .y_label_formatter(&|y| format_axis(*y))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let entries: Vec<(String, RGBColor)> = lines
        .iter()
        .map(|(c, _)| (c.name().to_string(), color(*c)))
        .collect();
    for (config, points) in lines {
        let colour = color(config);
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    draw_legend(&root, &entries).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(true)
}

/// Every chart of a run, written into `dir`; returns the files, relative to `dir`.
pub fn write_all(run: &BenchRun, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    let mut written = Vec::new();
    let groups = queue_depth_groups(run);
    for kernel in &run.kernels {
        let k = file_part(&kernel.name);
        let name = PathBuf::from(format!("ratio-{k}.svg"));
        if ratio_chart(run, &kernel.name, &dir.join(&name))? {
            written.push(name);
        }
        for w in &run.workloads {
            let name = PathBuf::from(format!("latency-{k}-{}.svg", file_part(&w.name)));
            if latency_chart(run, &kernel.name, &w.name, &dir.join(&name))? {
                written.push(name);
            }
        }
        for group in &groups {
            let name = PathBuf::from(format!("iops-qd-{k}-{}.svg", file_part(&group.0)));
            if queue_depth_chart(run, &kernel.name, group, &dir.join(&name))? {
                written.push(name);
            }
        }
    }
    Ok(written)
}
