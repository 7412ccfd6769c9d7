//! A strict reader of the text exposition format, so tests (unit and end to end) can hold every scrape to
//! the format Prometheus accepts, and read the values back. Pure; not used by the gateway itself.

use std::collections::HashMap;

use crate::config::is_valid_name_prefix;

/// A series' labels other than `le`.
type Labels = Vec<(String, String)>;

/// One parsed sample line: name, labels (unescaped), value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A strict parser of the text format as this encoder writes it: HELP/TYPE before a family's samples,
/// each family once, names and label names valid, label values properly escaped, values numbers,
/// histogram buckets cumulative and ending in `+Inf` equal to `_count`. Errors name the bad line.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line must end with a line feed".into());
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').ok_or_else(|| bad("HELP without text"))?;
            check_name(name).map_err(|e| bad(&e))?;
            if types.contains_key(name) {
                return Err(bad("HELP after the family's TYPE or a repeated family"));
            }
            current = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE without a type"))?;
            if !matches!(kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                return Err(bad("unknown type"));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(bad("family typed twice"));
            }
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let s = parse_sample(line).map_err(|e| bad(&e))?;
        let family = current.as_deref().ok_or_else(|| bad("sample before any TYPE"))?;
        let base = match types.get(family).map(String::as_str) {
            Some("histogram") => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|sfx| s.name.strip_suffix(sfx))
                .unwrap_or(&s.name)
                .to_string(),
            _ => s.name.clone(),
        };
        if base != family {
            return Err(bad("sample outside its family"));
        }
        samples.push(s);
    }
    check_histograms(&types, &samples)?;
    Ok(samples)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !is_valid_name_prefix(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let eq = r.find('=').ok_or("label without =")?;
            let key = &r[..eq];
            let valid_key = !key.is_empty()
                && key
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()));
            if !valid_key {
                return Err(format!("bad label name {key:?}"));
            }
            r = r[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("raw line feed in a label value".into()),
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            r = &r[end + 1..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
        rest = r;
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample { name: name.to_string(), labels, value })
}

fn check_histograms(types: &HashMap<String, String>, samples: &[Sample]) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, k)| k.as_str() == "histogram") {
        let bucket = format!("{family}_bucket");
        let count = format!("{family}_count");
        let mut series: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
        for s in samples.iter().filter(|s| s.name == bucket) {
            let le = s.labels.iter().find(|(k, _)| k == "le").ok_or("bucket without le")?;
            let le = if le.1 == "+Inf" { f64::INFINITY } else { le.1.parse().map_err(|_| "bad le")? };
            let rest: Vec<_> = s.labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            series.entry(rest).or_default().push((le, s.value));
        }
        for (labels, buckets) in series {
            if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
                return Err(format!("{family}{labels:?}: the last bucket is not +Inf"));
            }
            if buckets.windows(2).any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1) {
                return Err(format!("{family}{labels:?}: buckets not ascending and cumulative"));
            }
            let n = samples.iter().find(|s| s.name == count && s.labels == labels).ok_or("histogram without _count")?;
            if n.value != buckets.last().unwrap().1 {
                return Err(format!("{family}{labels:?}: +Inf bucket differs from _count"));
            }
        }
    }
    Ok(())
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}
