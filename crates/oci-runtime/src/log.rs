//! The `--log` file: where engines (conmon, containerd's shim) read a runtime's errors.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use crate::cli::{Cli, LogFormat};

/// Writes error and debug lines to the `--log` file, if any.
pub struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    debug: bool,
}

impl Logger {
    /// Opens (appends to) `--log`. A log that cannot be opened is reported on stderr and
    /// left out: the command itself can still work and report there.
    pub fn open(cli: &Cli) -> Self {
        let file = cli.log.as_ref().and_then(|path| {
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => Some(Mutex::new(f)),
                Err(e) => {
                    crate::output::error_line(&format!("opening log file {}: {e}", path.display()));
                    None
                }
            }
        });
        Logger {
            file,
            format: cli.log_format,
            debug: cli.debug,
        }
    }

    /// Logs an error.
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
    }

    /// Logs progress when `--debug` is on.
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(file) = &self.file else { return };
        let line = format_line(self.format, level, msg, &now());
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(line.as_bytes());
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// One line as runc (logrus) writes it in either format.
pub fn format_line(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        LogFormat::Text => {
            let quoted = serde_json::Value::String(msg.to_string()).to_string();
            format!("time=\"{time}\" level={level} msg={quoted}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_runcs_keys() {
        let line = format_line(LogFormat::Json, "error", "container \"x\" failed", "T");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" failed");
        assert_eq!(v["time"], "T");
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn text_lines_quote_the_message() {
        let line = format_line(LogFormat::Text, "error", "a \"b\"", "T");
        assert_eq!(line, "time=\"T\" level=error msg=\"a \\\"b\\\"\"\n");
    }
}
