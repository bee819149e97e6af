//! `mcp-warden pin`: approve a server's definitions into a pin file, and
//! `mcp-warden pin diff`: show what changed since.
//!
//! ```text
//! mcp-warden pin --upstream http://127.0.0.1:9000/mcp --out pins.json
//! mcp-warden pin diff --upstream http://127.0.0.1:9000/mcp --pins pins.json
//! mcp-warden pin --upstream http://127.0.0.1:9000/mcp --out pins.json --tool get_weather
//! ```
//!
//! `pin` keeps the approval time of definitions that did not change; with `--tool` it
//! approves only the tools named and leaves every other entry as it was; without, it
//! makes the file match the server (entries no longer listed are removed). `pin diff`
//! exits 0 when nothing changed and 1 when something did, so CI can run it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::definition::DefinitionKind;
use super::diff::{diff, Listing};
use super::fetch::{from_list_file, from_upstream};
use super::file::{PinEntry, PinFile};

/// `mcp-warden pin`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PinArgs {
    /// `diff`: compare instead of approving.
    #[command(subcommand)]
    pub command: Option<PinCommand>,
    /// Where the definitions come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The pin file to write (created if missing).
    #[arg(long, default_value = "pins.json")]
    pub out: PathBuf,
    /// Approve only this tool (repeatable); other entries stay as they are.
    #[arg(long = "tool")]
    pub tools: Vec<String>,
}

/// `mcp-warden pin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PinCommand {
    /// Show what changed between the pin file and the server, field by field. Exits 1
    /// when anything changed.
    Diff {
        /// Where the definitions come from.
        #[command(flatten)]
        source: SourceArgs,
        /// The pin file to compare with.
        #[arg(long, default_value = "pins.json")]
        pins: PathBuf,
    },
}

/// `--upstream URL` or `--from-list FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// The MCP server's URL (`http://…/mcp`): the definitions it lists now.
    #[arg(long, conflicts_with = "from_list")]
    pub upstream: Option<String>,
    /// A file holding list results (`{"tools": […]}`, a JSON-RPC response, or an array
    /// of those).
    #[arg(long)]
    pub from_list: Option<PathBuf>,
    /// A header sent to the upstream, `Name: value` (repeatable), e.g. a credential.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// How long to wait for each answer.
    #[arg(long, default_value = "10s")]
    pub timeout: humantime::Duration,
}

impl SourceArgs {
    /// Read the definitions.
    pub fn read(&self) -> anyhow::Result<Listing> {
        match (&self.upstream, &self.from_list) {
            (Some(url), None) => {
                let headers = self
                    .headers
                    .iter()
                    .map(|h| {
                        h.split_once(':')
                            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                            .with_context(|| format!("`--header {h}`: expected `Name: value`"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let timeout: Duration = self.timeout.into();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(from_upstream(url, &headers, timeout))?)
            }
            (None, Some(path)) => Ok(from_list_file(path)?),
            _ => anyhow::bail!(
                "say where the definitions come from: `--upstream URL` or `--from-list FILE`"
            ),
        }
    }
}

/// `mcp-warden pin …` as a process: exit 0, 1 (`diff` found changes) or 2 (error).
pub fn main(args: PinArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run `mcp-warden pin …`.
pub fn run(args: PinArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(PinCommand::Diff { source, pins }) => {
            let file = PinFile::load(&pins)?;
            let listing = source.read()?;
            let report = diff(&file, &listing);
            print!("{report}");
            Ok(if report.has_changes() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        None => {
            let listing = args.source.read()?;
            let mut file = if args.out.exists() {
                PinFile::load(&args.out)?
            } else {
                PinFile::new()
            };
            for line in approve(&mut file, &listing, &args.tools, SystemTime::now())? {
                println!("{line}");
            }
            file.save(&args.out)?;
            println!("wrote {}", args.out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Approve `listing` into `file` (only `tools` if any are named); returns what was done,
/// one line per change.
pub fn approve(
    file: &mut PinFile,
    listing: &Listing,
    tools: &[String],
    now: SystemTime,
) -> anyhow::Result<Vec<String>> {
    for name in tools {
        if !listing.contains_key(&(DefinitionKind::Tool, name.clone())) {
            anyhow::bail!("`--tool {name}`: the server does not list a tool `{name}`");
        }
    }
    let mut lines = Vec::new();
    for ((kind, name), definition) in listing {
        if !tools.is_empty() && (*kind != DefinitionKind::Tool || !tools.contains(name)) {
            continue;
        }
        let entries = file.entries_mut(*kind);
        let what = match entries.get(name) {
            Some(pin) if pin.digest == definition.digest => continue,
            Some(_) => "changed",
            None => "new",
        };
        entries.insert(name.clone(), PinEntry::approve(definition, now));
        lines.push(format!(
            "approved {} `{name}` ({what}, {})",
            kind.label(),
            definition.digest
        ));
    }
    if tools.is_empty() {
        for kind in [
            DefinitionKind::Tool,
            DefinitionKind::Prompt,
            DefinitionKind::ResourceTemplate,
        ] {
            let entries = file.entries_mut(kind);
            let gone: Vec<String> = entries
                .keys()
                .filter(|n| !listing.contains_key(&(kind, (*n).clone())))
                .cloned()
                .collect();
            for name in gone {
                entries.remove(&name);
                lines.push(format!(
                    "removed {} `{name}` (no longer listed)",
                    kind.label()
                ));
            }
        }
    }
    if lines.is_empty() {
        lines.push("nothing changed".into());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pins::definition::Definition;
    use serde_json::json;

    fn listing(items: serde_json::Value) -> Listing {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let d =
                    Definition::from_item(DefinitionKind::Tool, i.as_object().unwrap()).unwrap();
                ((DefinitionKind::Tool, d.name.clone()), d)
            })
            .collect()
    }

    #[test]
    fn approving_keeps_unchanged_times_and_honours_tool_selection() {
        let mut file = PinFile::new();
        let v1 = listing(json!([{"name": "a", "description": "1"}, {"name": "b"}]));
        approve(&mut file, &v1, &[], SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(file.tools.len(), 2);

        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(3600);
        let v2 = listing(json!([{"name": "a", "description": "2"}, {"name": "b"}, {"name": "c"}]));
        // only `a`: `c` stays unpinned
        let lines = approve(&mut file, &v2, &["a".into()], later).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("approved tool `a` (changed"));
        assert_eq!(file.tools["a"].approved_at, "1970-01-01T01:00:00Z");
        assert_eq!(file.tools["b"].approved_at, "1970-01-01T00:00:00Z");
        assert!(!file.tools.contains_key("c"));

        // everything: `c` added; then `b` gone is removed
        approve(&mut file, &v2, &[], later).unwrap();
        assert!(file.tools.contains_key("c"));
        let v3 = listing(json!([{"name": "a", "description": "2"}, {"name": "c"}]));
        let lines = approve(&mut file, &v3, &[], later).unwrap();
        assert_eq!(lines, ["removed tool `b` (no longer listed)"]);
        assert!(approve(&mut file, &v3, &["zzz".into()], later).is_err());
    }
}
