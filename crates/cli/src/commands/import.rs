//! `import [-c INSTRUCTION]... FILE|- [REF]`: a rootfs tarball as a one-layer
//! image, its config set by Dockerfile instructions as `docker import --change`.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_image_store::RunConfig;
use serde_json::{Map, Value, json};

use super::image_store;
use crate::cli::{GlobalOptions, ImportArgs};

/// Imports the tarball and prints the new image's id, as docker does.
pub async fn import(global: &GlobalOptions, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let config = container_config(&args.change)?;
    let store = image_store(global)?;
    let (input, name): (Box<dyn Read + Send>, String) = if args.file == "-" {
        (Box::new(std::io::stdin()), "STDIN".to_string())
    } else {
        let file = File::open(&args.file).with_context(|| format!("opening {}", args.file))?;
        (Box::new(file), args.file.clone())
    };
    let reference = args.reference.as_deref();
    let run: RunConfig = serde_json::from_value(config).context("the --change instructions")?;
    let id =
        basic_image_store::import_with_run_config(&store, input, &name, reference, &run, |_| {})
            .await?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The image config's `config` object from `--change` instructions.
fn container_config(changes: &[String]) -> anyhow::Result<Value> {
    let mut config = Map::new();
    for change in changes {
        let (instruction, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command_form(rest)?);
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command_form(rest)?);
            }
            "ENV" => {
                let env = config.entry("Env").or_insert_with(|| json!([]));
                for pair in key_values(rest, "ENV")? {
                    env.as_array_mut().unwrap().push(json!(pair));
                }
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                for pair in key_values(rest, "LABEL")? {
                    let (k, v) = pair.split_once('=').unwrap_or((&pair, ""));
                    labels[k] = json!(v);
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                for port in rest.split_whitespace() {
                    ports[exposed_port(port)?] = json!({});
                }
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(rest));
            }
            other => bail!(
                "{other} is not a valid change command: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                 STOPSIGNAL, USER or WORKDIR"
            ),
        }
    }
    Ok(Value::Object(config))
}

/// `["a", "b"]` (exec form) as is; anything else is the shell form `sh -c`.
fn command_form(text: &str) -> anyhow::Result<Value> {
    if text.starts_with('[') {
        let args: Vec<String> = serde_json::from_str(text)
            .with_context(|| format!("invalid JSON array in {text:?}"))?;
        return Ok(json!(args));
    }
    Ok(json!(["/bin/sh", "-c", text]))
}

/// `K=V K2=V2`, or the old single `K V` form.
fn key_values(text: &str, instruction: &str) -> anyhow::Result<Vec<String>> {
    if text.is_empty() {
        bail!("{instruction} needs at least one argument");
    }
    if !text.contains('=') {
        let (k, v) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        return Ok(vec![format!("{k}={}", v.trim())]);
    }
    Ok(text
        .split_whitespace()
        .map(|kv| kv.trim_matches('"').to_string())
        .collect())
}

/// `80` → `80/tcp`; `53/udp` stays.
fn exposed_port(text: &str) -> anyhow::Result<String> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    if port.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
        bail!("invalid port {text:?} in EXPOSE: expected PORT[/tcp|udp|sctp]");
    }
    Ok(format!("{port}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_become_the_image_config() {
        let changes = [
            "CMD [\"httpd\", \"-f\"]",
            "ENTRYPOINT /bin/run",
            "ENV A=1 B=2",
            "ENV C three",
            "EXPOSE 80 53/udp",
            "WORKDIR /srv",
            "USER 1000",
            "LABEL team=web",
            "STOPSIGNAL SIGQUIT",
        ]
        .map(String::from);
        let config = container_config(&changes).unwrap();
        assert_eq!(config["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run"]));
        assert_eq!(config["Env"], json!(["A=1", "B=2", "C=three"]));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(config["WorkingDir"], "/srv");
        assert_eq!(config["User"], "1000");
        assert_eq!(config["Labels"], json!({"team": "web"}));
        assert_eq!(config["StopSignal"], "SIGQUIT");
        let err = container_config(&["RUN make".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("RUN is not a valid change command"), "{err}");
        let err = container_config(&["EXPOSE http".to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid port"), "{err}");
    }
}
