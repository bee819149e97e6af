//! Invisible and control characters in definitions.
//!
//! A tool description is read by a model, not by the person who approved it. Characters
//! that render as nothing — zero-width spaces and joiners, bidirectional overrides that
//! reorder what a reviewer sees, Unicode tag characters that spell out hidden ASCII —
//! or control characters have no business there: they are how instructions are smuggled
//! past a review. [`scan`] finds them in every string of a definition (keys too, since a
//! schema's property names reach the model).

use serde_json::{Map, Value};

/// Findings reported per definition at most (the count of all is kept).
pub const MAX_FINDINGS: usize = 16;

/// One suspicious character.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// JSON pointer of the string holding it (`/description`, `/inputSchema/properties/a/description`);
    /// for a key, the pointer of the object holding the key followed by the key.
    pub at: String,
    /// The code point, `U+200B`.
    pub code_point: String,
    /// What it is (`zero-width`, `bidi-control`, `tag`, `control`, …).
    pub class: &'static str,
}

/// All findings of one definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// The first [`MAX_FINDINGS`] findings.
    pub first: Vec<Finding>,
    /// How many characters were flagged in all.
    pub total: usize,
}

impl Findings {
    /// Nothing flagged?
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The class of a character that should not appear in a definition, if it is one.
pub fn classify(c: char) -> Option<&'static str> {
    let cp = c as u32;
    Some(match cp {
        0x09 | 0x0A | 0x0D => return None,
        0x00..=0x1F | 0x7F..=0x9F => "control",
        0x200B..=0x200D | 0x2060..=0x2064 | 0xFEFF | 0x180E | 0x034F => "zero-width",
        0x00AD => "soft-hyphen",
        0x200E | 0x200F | 0x061C | 0x202A..=0x202E | 0x2066..=0x2069 => "bidi-control",
        0xE0000..=0xE007F => "tag",
        0xE0100..=0xE01EF => "variation-selector",
        0x115F | 0x1160 | 0x3164 | 0xFFA0 => "filler",
        0x2028 | 0x2029 => "separator",
        0xFFF9..=0xFFFB => "interlinear",
        _ => return None,
    })
}

/// Scan every string (and key) of a definition's fields.
pub fn scan(fields: &Map<String, Value>) -> Findings {
    let mut out = Findings::default();
    let mut path = String::new();
    scan_map(fields, &mut path, &mut out);
    out
}

fn scan_map(map: &Map<String, Value>, path: &mut String, out: &mut Findings) {
    for (key, value) in map {
        let len = path.len();
        path.push('/');
        push_escaped(path, key);
        scan_str(key, path, out);
        scan_value(value, path, out);
        path.truncate(len);
    }
}

fn scan_value(value: &Value, path: &mut String, out: &mut Findings) {
    match value {
        Value::String(s) => scan_str(s, path, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                scan_value(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(map) => scan_map(map, path, out),
        _ => {}
    }
}

fn scan_str(s: &str, path: &str, out: &mut Findings) {
    if s.is_ascii()
        && !s
            .bytes()
            .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') || b == 0x7F)
    {
        return;
    }
    for c in s.chars() {
        if let Some(class) = classify(c) {
            out.total += 1;
            if out.first.len() < MAX_FINDINGS {
                out.first.push(Finding {
                    at: path.to_owned(),
                    code_point: format!("U+{:04X}", c as u32),
                    class,
                });
            }
        }
    }
}

/// JSON pointer escaping (RFC 6901).
fn push_escaped(path: &mut String, key: &str) {
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scan_json(v: Value) -> Findings {
        scan(v.as_object().unwrap())
    }

    #[test]
    fn clean_text_is_not_flagged() {
        let f = scan_json(
            json!({"name": "echo", "description": "Echo text back.\nTabs\tare fine. Café ❤️ 日本",
            "inputSchema": {"properties": {"a": {"description": "ok"}}}}),
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn hidden_characters_are_found_with_where_and_what() {
        let f = scan_json(json!({
            "description": "Reads a file.\u{200B}",
            "inputSchema": {"properties": {"pa\u{202E}th": {"description": "x\u{E0041}\u{E0042}"}}},
            "title": "bell\u{7}"
        }));
        assert_eq!(f.total, 5);
        let seen: Vec<(&str, &str, &str)> = f
            .first
            .iter()
            .map(|x| (x.at.as_str(), x.code_point.as_str(), x.class))
            .collect();
        assert!(seen.contains(&("/description", "U+200B", "zero-width")));
        assert!(seen.contains(&(
            "/inputSchema/properties/pa\u{202E}th",
            "U+202E",
            "bidi-control"
        )));
        assert!(seen.contains(&(
            "/inputSchema/properties/pa\u{202E}th/description",
            "U+E0041",
            "tag"
        )));
        assert!(seen.contains(&("/title", "U+0007", "control")));
    }

    #[test]
    fn findings_are_capped_but_counted() {
        let f = scan_json(json!({"description": "\u{200B}".repeat(100)}));
        assert_eq!(f.total, 100);
        assert_eq!(f.first.len(), MAX_FINDINGS);
    }
}
