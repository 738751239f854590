//! What the SVG charts share: the page-wide plot width and margins, the
//! linear scale, "nice" ticks and a panel's left axis.

use std::fmt::Write as _;

use super::esc;

/// Width of every chart, pixels.
pub(super) const W: f64 = 1120.0;
/// Left margin, room for a panel's tick labels.
pub(super) const LEFT: f64 = 64.0;
/// Right margin.
pub(super) const RIGHT: f64 = 24.0;

/// Linear map from a data range onto a pixel range.
#[derive(Clone, Copy)]
pub(super) struct Scale {
    pub(super) d0: f64,
    pub(super) d1: f64,
    pub(super) p0: f64,
    pub(super) p1: f64,
}

impl Scale {
    pub(super) fn new(d0: f64, d1: f64, p0: f64, p1: f64) -> Scale {
        let d1 = if d1 - d0 > 1e-12 { d1 } else { d0 + 1.0 };
        Scale { d0, d1, p0, p1 }
    }
    pub(super) fn at(&self, v: f64) -> f64 {
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

/// A "nice" tick step giving about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Round tick values covering `d0 ..= d1`, about `n` of them (at most 50).
pub(super) fn ticks(d0: f64, d1: f64, n: f64) -> Vec<f64> {
    let step = tick_step(d1 - d0, n);
    let mut v = Vec::new();
    let mut x = (d0 / step).ceil() * step;
    while x <= d1 + step * 1e-6 && v.len() < 50 {
        v.push(if x.abs() < step * 1e-9 { 0.0 } else { x });
        x += step;
    }
    v
}

/// A tick label: at most three decimals, no trailing zeros, never "-0".
pub(super) fn fmt_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A panel's left axis with its ticks, horizontal grid and title.
pub(super) fn panel_frame(
    h: &mut String,
    x: &Scale,
    y: &Scale,
    top: f64,
    height: f64,
    title: &str,
    t: &[f64],
) {
    for v in t {
        let py = y.at(*v);
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x.p1,
            LEFT - 4.0,
            py + 4.0,
            fmt_tick(*v)
        );
    }
    let _ = writeln!(
        h,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{top:.1}\" x2=\"{LEFT}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"600\">{}</text>",
        top + height,
        LEFT + 4.0,
        top - 4.0,
        esc(title)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-2.13, 4.4, 12.0);
        assert_eq!(t.first().copied(), Some(-2.0));
        assert!(t.contains(&0.0));
        assert_eq!(fmt_tick(-0.0), "0");
        assert_eq!(fmt_tick(0.5), "0.5");
    }
}
