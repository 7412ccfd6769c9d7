//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per family, then its
//! samples; label values escaped (`\\`, `\"`, `\n`); histograms as cumulative `_bucket{le=…}` lines ending
//! in `le="+Inf"`, then `_sum` and `_count`. Pure: writes into a `String`, no I/O.

use std::fmt::Write;

use super::histogram::Histogram;

/// The `Content-Type` of a scrape answer.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric types this gateway exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Builds one scrape's text, family by family.
pub(crate) struct Encoder<'p> {
    out: String,
    prefix: &'p str,
}

impl<'p> Encoder<'p> {
    /// An empty scrape whose metric names all start with `prefix`.
    pub(crate) fn new(prefix: &'p str) -> Encoder<'p> {
        Encoder { out: String::with_capacity(16 * 1024), prefix }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples must follow before the next family.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = write!(self.out, "# HELP {}{name} ", self.prefix);
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {}{name} {}", self.prefix, kind.as_str());
    }

    /// One sample of a counter or gauge family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series(name, "", labels, None);
        self.value(value);
    }

    /// One series of a histogram family: cumulative buckets, `+Inf`, sum and count.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut le = String::with_capacity(24);
        for (bound, cumulative) in h.cumulative() {
            le.clear();
            match bound {
                Some(b) => {
                    let _ = write!(le, "{b}");
                }
                None => le.push_str("+Inf"),
            }
            self.series(name, "_bucket", labels, Some(&le));
            self.value(cumulative as f64);
        }
        self.series(name, "_sum", labels, None);
        self.value(h.sum_seconds());
        self.series(name, "_count", labels, None);
        self.value(h.count as f64);
    }

    /// The finished text.
    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn series(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<&str>) {
        let _ = write!(self.out, "{}{name}{suffix}", self.prefix);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_label_value(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn value(&mut self, v: f64) {
        self.out.push(' ');
        if v.is_nan() {
            self.out.push_str("NaN");
        } else if v.is_infinite() {
            self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(self.out, "{v}");
        }
        self.out.push('\n');
    }
}

/// Appends `v` with the three characters the format escapes in label values.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::OVERHEAD_BUCKETS;
    use crate::metrics::parse::parse;
    use std::time::Duration;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Encoder::new("p_");
        e.family("x_total", Kind::Counter, "a \\ help\nline");
        e.sample("x_total", &[("model", "a\"b\\c\nd"), ("client", "é")], 3.0);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP p_x_total a \\\\ help\\nline\n# TYPE p_x_total counter\np_x_total{model=\"a\\\"b\\\\c\\nd\",client=\"é\"} 3\n"
        );
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed[0].labels[0].1, "a\"b\\c\nd");
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_inf() {
        let mut h = Histogram::new(OVERHEAD_BUCKETS);
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_micros(20));
        h.observe(Duration::from_secs(5));
        let mut e = Encoder::new("");
        e.family("t_seconds", Kind::Histogram, "t");
        e.histogram("t_seconds", &[("phase", "a")], &h);
        let text = e.finish();
        assert!(text.contains("t_seconds_bucket{phase=\"a\",le=\"0.000005\"} 1\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{phase=\"a\",le=\"0.000025\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{phase=\"a\",le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_seconds_bucket{phase=\"a\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_seconds_sum{phase=\"a\"} 5.000023\n"), "{text}");
        assert!(text.contains("t_seconds_count{phase=\"a\"} 3\n"), "{text}");
        parse(&text).unwrap();
    }

    #[test]
    fn the_parser_refuses_what_prometheus_refuses() {
        for bad in [
            "x 1",
            "# TYPE x counter\nx{a=\"b} 1\n",
            "# TYPE x counter\nx{a=\"\\q\"} 1\n",
            "# TYPE x counter\nx{1a=\"b\"} 1\n",
            "# TYPE x counter\nx one\n",
            "# TYPE x counter\ny 1\n",
            "# TYPE x counter\n# TYPE x counter\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_label_value_round_trips_through_the_format(value in "\\PC*|[\\\\\"\n{}=,]*", help in "\\PC*") {
            let mut e = Encoder::new("aibridged_");
            e.family("f_total", Kind::Counter, &help);
            e.sample("f_total", &[("v", &value), ("w", "x")], 1.0);
            e.family("g", Kind::Gauge, "g");
            e.sample("g", &[], -2.5);
            let parsed = parse(&e.finish()).map_err(proptest::test_runner::TestCaseError::fail)?;
            proptest::prop_assert_eq!(&parsed[0].labels[0].1, &value);
            proptest::prop_assert_eq!(parsed[1].value, -2.5);
        }
    }
}
