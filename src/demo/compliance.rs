//! `hipaa_compliance_check`: stands for a tool that sends text to an outside service (so
//! it is declared `openWorldHint: true`), but in the demo it looks at the text locally and
//! nothing leaves the machine.

use serde::Serialize;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplianceReport {
    /// `true` when none of the identifiers it looks for appear.
    pub compliant: bool,
    /// The kinds of identifiers found, e.g. `"date"`.
    pub findings: Vec<&'static str>,
    /// A reminder of what this demo tool is.
    pub note: &'static str,
}

/// Look for a few HIPAA Safe Harbor identifiers: dates, Social Security numbers, e-mail
/// addresses, phone numbers, and words that suggest clinical content.
pub fn check(text: &str) -> ComplianceReport {
    let mut findings = Vec::new();
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '(' | ')'))
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.iter().any(|t| is_date(t)) {
        findings.push("date");
    }
    if tokens.iter().any(|t| shape(t) == "ddd-dd-dddd") {
        findings.push("social security number");
    }
    if tokens.iter().any(|t| {
        t.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
    }) {
        findings.push("e-mail address");
    }
    if tokens.iter().any(|t| {
        let digits = t.chars().filter(char::is_ascii_digit).count();
        digits >= 10 && t.chars().all(|c| c.is_ascii_digit() || "+-.".contains(c))
    }) {
        findings.push("phone number");
    }
    let lower = text.to_lowercase();
    if [
        "diagnosis",
        "treatment",
        "patient",
        "cancer",
        "medical record",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        findings.push("clinical content");
    }
    ComplianceReport {
        compliant: findings.is_empty(),
        findings,
        note: "demo tool: a real one would send the text to an outside service; this one did not",
    }
}

fn is_date(token: &str) -> bool {
    let token = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    matches!(
        shape(token).as_str(),
        "dddd-dd-dd" | "dd/dd/dddd" | "d/d/dddd"
    )
}

/// `d` for each digit, the character itself otherwise.
fn shape(token: &str) -> String {
    token
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_identifiers() {
        let report = check(
            "Patient Erin, seen 2024-02-10, SSN 123-45-6789, erin@example.org, +1-555-123-4567",
        );
        assert!(!report.compliant);
        assert_eq!(
            report.findings,
            [
                "date",
                "social security number",
                "e-mail address",
                "phone number",
                "clinical content"
            ]
        );
    }

    #[test]
    fn plain_text_is_compliant() {
        let report = check("The clinic opens at nine.");
        assert!(report.compliant);
        assert!(report.findings.is_empty());
    }
}
