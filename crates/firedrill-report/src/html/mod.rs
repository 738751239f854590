//! `report.html`: one self-contained page per run, readable offline and as a
//! CI artifact. No script, no external file: the charts are SVG drawn here,
//! the styles a few inline rules.
//!
//! Chart elements carry stable classes and `data-*` attributes (e.g.
//! `class="marker marker-fault-start" data-marker="fault_start"`) so tests,
//! and anyone scraping reports, can find them without parsing pixels.
//!
//! By concern: [`page`] assembles the document and its sections, [`tables`]
//! the tabular figures, [`timeline`] and [`markers`] the per-trial chart,
//! [`strips`] the across-trials strip plots, [`lanes`] a capability's
//! domains on one axis, [`chart`] the scales and axes they share.

mod chart;
mod lanes;
mod markers;
mod page;
mod strips;
mod tables;
mod timeline;

pub use page::render_html;

/// File name inside the run directory.
pub const HTML_FILE: &str = "report.html";

/// Escapes text for HTML content and quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
