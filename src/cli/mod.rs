//! The subcommands' arguments and the little glue each needs between clap and the
//! library: reading keys and tokens from files or standard input, printing results.
//! Errors are `anyhow` here, at the edge; the library's own are typed.

pub mod demo;
pub mod dev_jwt;
pub mod logging;
pub mod policy;
pub mod revoke;
pub mod token;

/// An error as one message: each cause in the chain, skipping a cause whose text the
/// message before it already shows (most of the library's errors print their source).
pub fn render(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    let mut previous = out.clone();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !previous.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("`f`: cannot read: {source}")]
    struct Shows {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn causes_are_shown_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Shows { source: io() });
        assert_eq!(render(&e), "`f`: cannot read: gone");
        let e = anyhow::Error::new(io()).context("audit log");
        assert_eq!(render(&e), "audit log: gone");
    }
}
